"""Benchmark the local webhook loop (prints figures; not a test).

1. Latency and throughput at concurrency 16 with a ~4 KB Pod review, in one run:
   the sidecar injector served directly by aiohttp (plain HTTP, no proxy), then through
   ``webhook-dev serve`` (TLS) with recording off and on; figures and ratios to direct.
2. Reload under steady load: 50 saves of a user's app while 4 clients call it without
   pause; failed calls (goal 0) and save-to-new-code p50/p95 (goal <= 1 s): from the
   editor's rename to the first answer from the new code.

Run: ``.venv/bin/python bench/loop_bench.py [--requests 4000] [--saves 50]``.
Client, proxy and workers share the machine: compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import aiohttp

from webhook_dev.tls.authority import LocalAuthority

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = 16


def pod_review() -> dict[str, Any]:
    containers = [
        {
            "name": f"app-{i}",
            "image": f"registry.example.com/team/app-{i}:1.2.{i}",
            "env": [{"name": f"SETTING_{j}", "value": f"value-{i}-{j}"} for j in range(14)],
            "ports": [{"containerPort": 8080 + i, "protocol": "TCP"}],
            "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
        }
        for i in range(4)
    ]
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "bench-0",
            "namespace": "default",
            "labels": {f"label-{i}": f"value-{i}" for i in range(8)},
            "annotations": {"team": "bench", "owner": "webhook-dev"},
        },
        "spec": {"containers": containers, "volumes": [{"name": "data", "emptyDir": {}}]},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench-uid",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "name": "bench-0",
            "operation": "CREATE",
            "object": obj,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
        },
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_serve(
    args: list[str], cwd: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    """Start serve with its console going to a file, so reading it costs the client nothing."""
    console = Path(tempfile.mkstemp(prefix="bench-serve-", suffix=".log")[1])
    with console.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "webhook_dev", "serve", *args],
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    for _ in range(1200):
        match = re.search(r"^serving (https://\S+)$", console.read_text(), re.MULTILINE)
        if match:
            return process, match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"serve did not start:\n{console.read_text()}")


async def load(
    url: str, body: bytes, requests: int, context: ssl.SSLContext | None
) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    remaining = requests
    connector = aiohttp.TCPConnector(ssl=context if context else False, limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal remaining, failures
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    await response.read()
                    failures += response.status != 200
                latencies.append(time.perf_counter() - started)

        warmup = remaining
        remaining = 200
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        latencies.clear()
        remaining = warmup
        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "rps": len(latencies) / elapsed,
        "failures": failures,
    }


async def throughput(requests: int, rounds: int, state: Path, env: dict[str, str]) -> None:
    """All three targets stay up; rounds alternate between them; medians are reported."""
    body = json.dumps(pod_review()).encode()
    print(
        f"review size: {len(body)} bytes, concurrency {CONCURRENCY}, {requests} calls a round, "
        f"{rounds} rounds alternating between targets, medians"
    )
    port = free_port()
    direct = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
        [
            sys.executable,
            "-c",
            "from aiohttp import web; from sample_webhook.sidecar_injector import create_app; "
            f"web.run_app(create_app(), host='127.0.0.1', port={port}, "
            "access_log=None, print=None)",
        ],
        cwd=REPO,
        env=env,
    )
    processes: list[subprocess.Popen[bytes]] = [direct]
    context = ssl.create_default_context(cafile=str(state / "ca" / "ca.crt"))
    targets: list[tuple[str, str, ssl.SSLContext | None]] = [
        ("direct aiohttp (HTTP)", f"http://127.0.0.1:{port}/mutate", None)
    ]
    try:
        for label, record in (
            ("serve, TLS, no recording", ["--no-record"]),
            ("serve, TLS, recording", ["--record", str(state / "bench.jsonl")]),
        ):
            serve, url = start_serve(
                ["sample_webhook.sidecar_injector", "--port", "0", "--no-reload", *record],
                REPO,
                env,
            )
            processes.append(serve)
            targets.append((label, f"{url}/mutate?timeout=10s", context))
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        runs: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in targets}
        for _ in range(rounds):
            for label, url, tls in targets:
                runs[label].append(await load(url, body, requests, tls))
    finally:
        for process in processes:
            process.terminate()
            process.wait()
    rows = [
        (label, {key: statistics.median(run[key] for run in results) for key in results[0]})
        for label, results in runs.items()
    ]
    base = rows[0][1]
    print(
        f"{'':28} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>8}  {'p50 x':>6} {'p99 x':>6} "
        f"{'tput x':>6}  failed"
    )
    for label, row in rows:
        print(
            f"{label:28} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {row['rps']:8.0f}  "
            f"{row['p50_ms'] / base['p50_ms']:6.2f} {row['p99_ms'] / base['p99_ms']:6.2f} "
            f"{row['rps'] / base['rps']:6.2f}  {row['failures']:.0f}"
        )


APP = """
from aiohttp import web

VERSION = {version!r}


async def mutate(request):
    review = await request.json()
    return web.json_response({{
        "apiVersion": review["apiVersion"], "kind": "AdmissionReview",
        "response": {{"uid": review["request"]["uid"], "allowed": True, "warnings": [VERSION]}},
    }})


def create_app():
    app = web.Application()
    app.router.add_post("/mutate", mutate)
    return app
"""


async def reloads(saves: int, state: Path, env: dict[str, str]) -> None:
    project = Path(tempfile.mkdtemp(prefix="bench-project-"))
    app_file = project / "hook.py"

    def save(version: int) -> float:
        temporary = project / ".hook.py.tmp"
        temporary.write_text(textwrap.dedent(APP.format(version=f"v{version}")))
        saved = time.perf_counter()
        os.replace(temporary, app_file)
        return saved

    save(0)
    serve, url = start_serve(["hook", "--port", "0", "--no-record"], project, env)
    context = ssl.create_default_context(cafile=str(state / "ca" / "ca.crt"))
    body = json.dumps(pod_review()).encode()
    calls = failures = 0
    first_seen: dict[str, float] = {}
    new_code = asyncio.Event()
    awaited = ""
    stop = asyncio.Event()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:

            async def client() -> None:
                nonlocal calls, failures
                while not stop.is_set():
                    async with session.post(
                        f"{url}/mutate?timeout=10s",
                        data=body,
                        headers={"Content-Type": "application/json"},
                    ) as r:
                        text = await r.text()
                        calls += 1
                        if r.status != 200:
                            failures += 1
                            continue
                        version = json.loads(text)["response"]["warnings"][0]
                        first_seen.setdefault(version, time.perf_counter())
                        if version == awaited:
                            new_code.set()

            clients = [asyncio.create_task(client()) for _ in range(4)]
            delays: list[float] = []
            for version in range(1, saves + 1):
                awaited = f"v{version}"
                new_code.clear()
                saved = save(version)
                await new_code.wait()
                delays.append(first_seen[f"v{version}"] - saved)
                await asyncio.sleep(0.2)
            stop.set()
            await asyncio.gather(*clients)
    finally:
        serve.terminate()
        serve.wait()
    delays.sort()
    print(
        f"reload under load: {saves} saves, {calls} calls, {failures} failed; "
        f"save-to-new-code p50 {statistics.median(delays) * 1000:.0f} ms, "
        f"p95 {delays[int(len(delays) * 0.95) - 1] * 1000:.0f} ms, "
        f"max {delays[-1] * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--saves", type=int, default=50)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="bench-state-"))
    LocalAuthority.load_or_create(state / "ca")
    env = dict(os.environ, WEBHOOK_DEV_STATE_DIR=str(state))
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    asyncio.run(throughput(args.requests, args.rounds, state, env))
    asyncio.run(reloads(args.saves, state, env))


if __name__ == "__main__":
    main()
