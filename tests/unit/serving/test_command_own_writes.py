"""Which saves ``--build``/``--run`` takes for its own output: those made from the start of
the build until the command listens, not a developer's save made on seeing "ready"."""

from __future__ import annotations

import time

from webhook_dev.serving.upstreams.command import CommandUpstream
from webhook_dev.serving.upstreams.url import UpstreamUrl


def _upstream() -> CommandUpstream:
    url = UpstreamUrl.parse("http://127.0.0.1:9443")
    return CommandUpstream(url, "bin/manager", build="make build")


def test_the_window_ends_when_the_command_listens_not_when_the_build_step_returns() -> None:
    command = _upstream()
    before = time.time()
    with command._starting():  # the build (make build)
        during_build = time.time()
        with command._starting():  # the start of bin/manager, until it listens
            pass
        listened = time.time()
        time.sleep(0.01)
        saved_on_ready = time.time()  # the handover publishes "ready"; the developer saves
    assert command.wrote_while_starting(before - 1) is None
    assert command.wrote_while_starting(during_build) == "make build` / `bin/manager"
    assert command.wrote_while_starting(saved_on_ready) is None
    assert command.wrote_while_starting(listened + 0.005) is None


def test_a_build_that_fails_closes_the_window_when_it_fails() -> None:
    command = _upstream()
    with command._starting():
        during = time.time()
    after = time.time() + 0.01
    assert command.wrote_while_starting(during) is not None
    assert command.wrote_while_starting(after) is None
