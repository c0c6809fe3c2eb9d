"""Saving the app reloads it without failing a call; broken code never takes serving down."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable

import aiohttp

from tests.conftest import Project, Served
from tests.polling import wait_until
from tests.reviews import request_review


def version_of(served: Served) -> str:
    warnings: list[str] = served.review(request_review())["response"]["warnings"]
    return warnings[0]


def wait_for_version(served: Served, version: str, timeout: float = 60.0) -> None:
    wait_until(
        lambda: version_of(served) == version,
        timeout=timeout,
        what=f"the answer comes from {version}",
        details=lambda: served.output,
    )


def test_saving_the_app_makes_the_new_code_answer(
    serve: Callable[..., Served], project: Project
) -> None:
    served = serve("hook", "--port", "0", "--no-record", cwd=project.path)
    assert version_of(served) == "v1"
    project.write_app("v2")
    served.wait_for(r"reloading: changed hook\.py")
    served.wait_for(r"worker 2 ready")
    wait_for_version(served, "v2")


def test_a_syntax_error_leaves_the_old_code_serving_and_prints_the_error(
    serve: Callable[..., Served], project: Project
) -> None:
    served = serve("hook", "--port", "0", "--no-record", cwd=project.path)
    project.write("def broken(:\n")
    served.wait_for(r"worker 2 failed to start; worker 1 keeps serving")
    served.wait_for(r"SyntaxError")
    assert version_of(served) == "v1"
    project.write_app("v3")
    served.wait_for(r"worker 3 ready")
    wait_for_version(served, "v3")


def test_an_app_broken_at_start_answers_503_until_a_save_fixes_it(
    serve: Callable[..., Served], project: Project
) -> None:
    project.write("raise RuntimeError('missing config')\n")
    served = serve("hook", "--port", "0", "--no-record", cwd=project.path)
    served.wait_for(r"no worker is serving")
    served.wait_for(r"RuntimeError: missing config")
    status, body = served.call(request_review(), path="/mutate?timeout=1s")
    assert status == 503 and b"no worker is running the app" in body
    project.write_app("v2")
    wait_for_version(served, "v2")


def test_saving_under_continuous_load_fails_no_call(
    serve: Callable[..., Served], project: Project
) -> None:
    served = serve("hook", "--port", "0", "--no-record", cwd=project.path)
    saves = 5
    results = asyncio.run(_load_while_saving(served, project, saves))
    failures = [r for r in results if r[0] != 200]
    assert failures == [], failures[:3]
    assert len(results) > saves
    assert results[-1][1] == f"v{saves + 1}"


async def _load_while_saving(served: Served, project: Project, saves: int) -> list[tuple[int, str]]:
    results: list[tuple[int, str]] = []
    done = asyncio.Event()
    body = json.dumps(request_review()).encode()
    context = served.tls_context()

    async def client(session: aiohttp.ClientSession) -> None:
        while not done.is_set():
            async with session.post(
                f"{served.url}/mutate?timeout=30s",
                data=body,
                headers={"Content-Type": "application/json"},
            ) as response:
                text = await response.text()
                version = json.loads(text)["response"]["warnings"][0] if response.ok else text
                results.append((response.status, version))

    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:
        clients = [asyncio.create_task(client(session)) for _ in range(4)]
        for version in range(2, saves + 2):
            project.write_app(f"v{version}")
            await asyncio.to_thread(served.wait_for, rf"worker {version} ready")
            await asyncio.sleep(0.2)
        done.set()
        await asyncio.gather(*clients)
        # after the last save settled, the newest code answers
        async with session.post(f"{served.url}/mutate?timeout=30s", data=body) as response:
            results.append(
                (response.status, json.loads(await response.text())["response"]["warnings"][0])
            )
    return results


def test_killing_serve_leaves_no_worker_behind(
    serve: Callable[..., Served], project: Project
) -> None:
    served = serve("hook", "--port", "0", "--no-record", cwd=project.path)
    line = served.wait_for(r"worker 1 ready \(pid \d+")
    pid = int(line.split("pid ")[1].split(",")[0])
    os.kill(pid, 0)  # running
    served.stop(signal.SIGKILL)
    wait_until(lambda: not _alive(pid), timeout=60, what=f"worker {pid} is gone with serve")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie awaiting its reaper is gone for our purpose
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
