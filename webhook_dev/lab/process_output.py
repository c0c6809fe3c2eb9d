"""Read a child process's output line by line while it runs, and wait for a line.

``webhook-dev demo`` waits for ``up`` to print ``ready:``; the project's own tests (and a
user's tests on the lab) wait for ``serve``'s or ``up``'s lines the same way. A reader
thread collects the lines as they come, so the process never blocks on a full pipe and
the caller can look at everything printed so far when a wait fails.

What can go wrong: a process that exits may leave children holding the pipe open (a
worker, ``ssh``), so the end of the output is not always seen; a wait therefore also
ends shortly after the process itself has exited.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable

# How long a wait keeps reading after the process exited, for output still in the pipe.
_DRAIN_SECONDS = 1.0


class ProcessOutput:
    """The lines ``process`` prints on its stdout, collected by a reader thread."""

    def __init__(
        self, process: subprocess.Popen[str], *, echo: Callable[[str], None] | None = None
    ) -> None:
        if process.stdout is None:
            raise ValueError("the process needs stdout=subprocess.PIPE and text=True")
        self.process = process
        self._stdout = process.stdout
        self._echo = echo
        self._lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for line in self._stdout:
                text = line.rstrip("\n")
                if self._echo is not None:
                    self._echo(text)
                with self._changed:
                    self._lines.append(text)
                    self._changed.notify_all()
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    @property
    def lines(self) -> list[str]:
        """Every line so far (a copy), without line endings."""
        with self._changed:
            return list(self._lines)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def ended(self) -> bool:
        """The process closed its output (it has exited or is exiting)."""
        with self._changed:
            return self._ended

    def mark(self) -> int:
        """A position in the output: ``wait_for(..., after=mark)`` looks only after it."""
        with self._changed:
            return len(self._lines)

    def wait_for(
        self, pattern: str | re.Pattern[str], *, timeout: float, after: int = 0
    ) -> str | None:
        """The first line from index ``after`` on where ``pattern`` (a regex) is found.

        ``None`` once ``timeout`` seconds have passed, or the output ended (the process
        exited) without such a line; the caller says what that means.
        """
        compiled = re.compile(pattern)
        until = time.monotonic() + timeout
        exited_at: float | None = None
        with self._changed:
            while True:
                for line in self._lines[after:]:
                    if compiled.search(line):
                        return line
                after = max(after, len(self._lines))
                if self._ended:
                    return None
                now = time.monotonic()
                if exited_at is None and self.process.poll() is not None:
                    exited_at = now
                if exited_at is not None and now - exited_at > _DRAIN_SECONDS:
                    return None
                if now >= until:
                    return None
                self._changed.wait(min(until - now, 0.2))

    def wait_until_ended(self, timeout: float = _DRAIN_SECONDS) -> None:
        """Give the reader up to ``timeout`` seconds to take in what is left in the pipe."""
        self._reader.join(timeout)
