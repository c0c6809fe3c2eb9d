"""A handler that exits or blocks the loop costs only its own call (issue 15, finding 4)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Project, Served
from tests.reviews import request_review

APP = """
import sys, time
from aiohttp import web

async def mutate(request):
    review = await request.json()
    return web.json_response({
        "apiVersion": review["apiVersion"], "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": True},
    })

async def leave(request):
    await request.read()
    __CALL__

def create_app():
    app = web.Application()
    app.router.add_post("/mutate", mutate)
    app.router.add_post("/leave", leave)
    return app
"""
CLIENTS = 4


class Clients:
    """``CLIENTS`` threads calling ``/mutate`` back to back, counting what failed."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.stop = threading.Event()
        self.ok = 0
        self.failed: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _run(self) -> None:
        body = json.dumps(request_review()).encode()
        connection = self._connect()
        while not self.stop.is_set():
            try:
                connection.request(
                    "POST",
                    "/mutate?timeout=10s",
                    body=body,
                    headers={"Content-Type": "application/json"},
                )
                response = connection.getresponse()
                answer = response.read()
                outcome = None if response.status == 200 else f"{response.status} {answer[:80]!r}"
            except (OSError, http.client.HTTPException) as error:
                outcome = repr(error)
                connection.close()
                connection = self._connect()
            with self.lock:
                if outcome is None:
                    self.ok += 1
                else:
                    self.failed.append(outcome)

    def _connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "127.0.0.1", self.served.port, context=self.served.tls_context(), timeout=60
        )

    def wait_for_calls(self, count: int, timeout: float = 60) -> None:
        until = time.monotonic() + timeout
        start = self.ok
        while self.ok < start + count and time.monotonic() < until:
            time.sleep(0.05)
        assert self.ok >= start + count, f"only {self.ok - start} calls answered"


def _serve_leaving(serve: Callable[..., Served], project: Project, call: str) -> Served:
    project.write(APP.replace("__CALL__", call))
    return serve("hook", "--port", "0", "--no-record", "--no-reload", cwd=project.path)


def test_sys_exit_in_a_handler_fails_only_its_own_call_under_four_clients(
    serve: Callable[..., Served], project: Project
) -> None:
    served = _serve_leaving(serve, project, "sys.exit(3)")
    with Clients(served) as clients:
        for round_number in range(3):
            clients.wait_for_calls(50)
            status, body = served.call(request_review(), path="/leave?timeout=10s")
            assert status == 500 and b"SystemExit" in body, body
            served.wait_for(r"worker \d+ is exiting: a handler called sys.exit\(\)")
            clients.wait_for_calls(50)
            del round_number
    assert clients.failed == [], (
        f"{len(clients.failed)} failed: {clients.failed[:5]}\n{served.output[-3000:]}"
    )


def test_keyboard_interrupt_in_a_handler_fails_only_its_own_call(
    serve: Callable[..., Served], project: Project
) -> None:
    served = _serve_leaving(serve, project, "raise KeyboardInterrupt")
    with Clients(served) as clients:
        clients.wait_for_calls(50)
        status, _ = served.call(request_review(), path="/leave?timeout=10s")
        assert status == 500
        clients.wait_for_calls(50)
    assert clients.failed == []


def test_a_handler_blocking_the_event_loop_gets_its_worker_replaced_and_said_why(
    serve: Callable[..., Served], project: Project
) -> None:
    """The calls already queued on the blocked worker are sent to its replacement
    within their deadline (issue 23, finding 5): none of the four clients sees a failure;
    the blocking call itself blocks the replacement too, and fails alone."""
    served = _serve_leaving(serve, project, "time.sleep(30)")
    blocked_answer: list[tuple[int, bytes]] = []
    with Clients(served) as clients:
        clients.wait_for_calls(20)
        blocked = threading.Thread(
            target=lambda: blocked_answer.append(
                served.call(request_review(), path="/leave?timeout=10s")
            ),
            daemon=True,
        )
        blocked.start()
        served.wait_for(r"worker 1 stopped answering health checks", timeout=30)
        served.wait_for(r"worker 2 ready", timeout=60)
        clients.wait_for_calls(50, timeout=30)
        blocked.join(timeout=30)
    assert clients.failed == [], (
        f"{len(clients.failed)} failed: {clients.failed[:5]}\n{served.output[-3000:]}"
    )
    [(status, body)] = blocked_answer
    assert status in (502, 504), body


def test_a_worker_that_dies_mid_call_has_the_other_calls_retried(
    serve: Callable[..., Served], project: Project, tmp_path: Path
) -> None:
    served = _serve_leaving(serve, project, "import os; os._exit(1)")
    with Clients(served) as clients:
        clients.wait_for_calls(50)
        status, _ = served.call(request_review(), path="/leave?timeout=10s")
        assert status in (500, 502)
        served.wait_for(r"worker 1 exited \(1\)")
        clients.wait_for_calls(50)
    assert clients.failed == []
