"""Start a process and read its output line by line: the one way the tests run webhook-dev.

``serve``, ``inspect``, ``up`` (in the lab's workstation namespace) and the lab tests'
helper servers all run as a :class:`RunningProcess`. Its waits fail with everything the
process printed and its exit code, so a failing test says what the process said.
Fixtures start processes through a :class:`Processes` and stop them at teardown, also
when the test failed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from webhook_dev.lab.process_output import ProcessOutput

REPO = Path(__file__).resolve().parents[1]
WEBHOOK_DEV = [sys.executable, "-m", "webhook_dev"]


def sample_project(tmp_path: Path) -> Path:
    """A developer's project to edit under ``up``: a copy of ``sample_webhook/`` (without
    its manifests) in ``tmp_path/project``, returned; run ``up`` with it as ``cwd``."""
    project = tmp_path / "project"
    shutil.copytree(
        REPO / "sample_webhook",
        project / "sample_webhook",
        ignore=shutil.ignore_patterns("__pycache__", "deploy"),
    )
    return project


STARTUP_TIMEOUT = 90.0  # a loaded 2-core machine can be slow to import aiohttp twice
STOP_TIMEOUT = 60.0


class RunningProcess:
    """A child process with its stdout and stderr merged and read line by line."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        name: str | None = None,
        own_session: bool = False,
    ) -> None:
        """``env`` is added to this process's environment; ``own_session`` starts the
        process in a session of its own, so :meth:`stop` signals its whole group (``up``
        and the ``ssh`` and workers it starts)."""
        self.argv = list(argv)
        self.name = name or Path(self.argv[0]).name
        self._own_session = own_session
        self.process = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=own_session,
        )
        self._output = ProcessOutput(self.process)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def lines(self) -> list[str]:
        return self._output.lines

    @property
    def output(self) -> str:
        return self._output.text

    def mark(self) -> int:
        """A position in the output; ``wait_for(..., after=mark)`` looks only after it."""
        return self._output.mark()

    def wait_for(
        self, pattern: str | re.Pattern[str], *, after: int = 0, timeout: float = STARTUP_TIMEOUT
    ) -> str:
        """The first output line (from index ``after``) where the regex ``pattern`` is found."""
        line = self._output.wait_for(pattern, timeout=timeout, after=after)
        if line is not None:
            return line
        shown = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
        code = self.process.poll()
        if code is None and self._output.ended:
            # Its output ended: it is exiting. Read the code rather than race the reaping.
            try:
                code = self.process.wait(5)
            except subprocess.TimeoutExpired:
                code = None
        state = f"exited with {code}" if code is not None else f"still running after {timeout}s"
        raise AssertionError(
            f"{self.name} printed no line matching {shown!r} ({state}); its output:\n{self.output}"
        )

    def wait(self, timeout: float) -> int:
        """The exit code, once the process ended and its remaining output is read."""
        code = self.process.wait(timeout)
        self._output.wait_until_ended()
        return code

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send ``signum`` (if still running) and wait; SIGKILL after ``timeout``."""
        if self.process.poll() is None:
            self._signal(signum)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            return self.wait(10)

    def _signal(self, signum: int) -> None:
        try:
            if self._own_session:
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)
        except ProcessLookupError:
            pass  # exited (or its group did) meanwhile


class Processes:
    """The processes one fixture started; :meth:`stop_all` stops every one still running."""

    def __init__(self) -> None:
        self.started: list[RunningProcess] = []

    def add(self, running: RunningProcess) -> RunningProcess:
        self.started.append(running)
        return running

    def stop_all(self) -> None:
        for running in reversed(self.started):
            running.stop()


@contextmanager
def stopped_at_exit() -> Iterator[Processes]:
    """For a fixture: ``with stopped_at_exit() as processes: yield ...``."""
    processes = Processes()
    try:
        yield processes
    finally:
        processes.stop_all()
