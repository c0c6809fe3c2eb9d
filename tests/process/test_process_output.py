"""The line reader the harness and ``demo`` share, on small real child processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.harness import RunningProcess
from webhook_dev.lab.process_output import ProcessOutput

PRINT_THEN_EXIT = "import sys; print('one'); print('two', flush=True); sys.exit(3)"
PRINT_THEN_SLEEP = "import time; print('ready', flush=True); time.sleep(60)"


def test_a_wait_finds_a_line_and_looks_only_after_a_mark() -> None:
    running = RunningProcess([sys.executable, "-c", PRINT_THEN_SLEEP], name="sleeper")
    try:
        assert running.wait_for(r"^rea", timeout=30) == "ready"
        mark = running.mark()
        with pytest.raises(AssertionError, match=r"still running after 0.3s"):
            running.wait_for("ready", after=mark, timeout=0.3)
    finally:
        assert running.stop(signal.SIGTERM) == -signal.SIGTERM


def test_a_wait_on_a_process_that_exited_fails_at_once_with_its_output_and_code() -> None:
    running = RunningProcess([sys.executable, "-c", PRINT_THEN_EXIT], name="quitter")
    started = time.monotonic()
    with pytest.raises(AssertionError) as failure:
        running.wait_for("never printed", timeout=60)
    assert time.monotonic() - started < 30  # not the whole timeout
    message = str(failure.value)
    assert "quitter printed no line matching 'never printed' (exited with 3)" in message
    assert message.endswith("one\ntwo")
    assert running.wait(10) == 3


def test_the_reader_echoes_each_line_and_ends_when_a_child_keeps_the_pipe() -> None:
    """The child's own child (sleep) holds stdout open after the child exits."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import subprocess; subprocess.Popen(['sleep', '5']); print('x')"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    echoed: list[str] = []
    output = ProcessOutput(process, echo=echoed.append)
    try:
        assert output.wait_for("x", timeout=30) == "x"
        started = time.monotonic()
        assert output.wait_for("y", timeout=30) is None
        assert time.monotonic() - started < 10
        assert echoed == ["x"] and output.lines == ["x"]
    finally:
        process.wait(10)
