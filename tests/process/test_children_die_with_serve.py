"""``serve``'s children (the worker and its spare) never outlive a ``kill -9`` of it
(issue 23, finding 7): also when it comes while the spare is still importing aiohttp
(before it could ask for the kernel's death signal), and while a handler blocks the
worker's event loop (where a SIGTERM handler never runs). How long they take is measured
by bench/child_exit_bench.py (docs/benchmarks.md)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Project, Served
from tests.polling import wait_until
from tests.reviews import request_review

BLOCKING_APP = """
import time
from aiohttp import web

async def mutate(request):
    await request.read()
    time.sleep(60)

app = web.Application()
app.router.add_post("/mutate", mutate)
"""


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie waiting for its reaper is gone for our purpose


def _kill_and_wait_gone(served: Served, when: str) -> None:
    children = _children(served.pid)
    assert children, "serve has no child to watch"
    served.stop(signal.SIGKILL)
    wait_until(
        lambda: not any(_alive(child) for child in children),
        timeout=20,
        what=f"serve's children {sorted(children)} gone after its kill -9 ({when})",
        details=lambda: str([child for child in children if _alive(child)]),
    )


def test_every_child_is_gone_after_kill_9_of_serve_as_the_spare_starts(
    serve: Callable[..., Served], project: Project
) -> None:
    for _round in range(3):
        served = serve("hook", "--port", "0", "--no-record", "--no-reload", cwd=project.path)
        served.wait_for(r"worker 1 ready")  # the spare is spawned now, importing aiohttp
        _kill_and_wait_gone(served, "as the spare starts")


@pytest.mark.parametrize("round_number", range(3))
def test_a_worker_blocked_in_a_handler_is_gone_after_kill_9_of_serve(
    serve: Callable[..., Served], project: Project, round_number: int
) -> None:
    project.write(BLOCKING_APP)
    served = serve("hook:app", "--port", "0", "--no-record", "--no-reload", cwd=project.path)
    served.wait_for(r"worker 1 ready")
    threading.Thread(
        target=lambda: _ignore_errors(lambda: served.call(request_review())), daemon=True
    ).start()
    served.wait_for(r"worker 1 stopped answering health checks", timeout=30)
    _kill_and_wait_gone(served, "a handler blocks the loop")


def _ignore_errors(call: Callable[[], object]) -> None:
    with contextlib.suppress(OSError):  # serve was killed under the call
        call()
