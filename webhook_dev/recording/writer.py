"""Recordings on disk: the subscriber that appends exchanges.

Each exchange is written as one complete line in a single ``write(2)`` on a file opened
``O_APPEND``, so a crash of webhook-dev never leaves a half line behind a completed one:
every line is in the kernel the moment its exchange is published — right after its answer
was written (the proxy answers first; only a ``kill -9`` in that same turn of the event
loop can lose an answered exchange, and the recorder is the first subscriber, so anything
shown anywhere is on disk). ``fsync`` (which
only matters if the machine itself goes down) follows within :data:`FSYNC_DELAY` seconds,
off the event loop, and on close.

Retention: with ``max_size`` (``--record-max-size``, default :data:`DEFAULT_MAX_SIZE`),
a line that would take the file past that size starts the next part instead
(:func:`part_path`); a line is never split, and one line larger than the limit gets a
part of its own. Each part has its index (:mod:`~webhook_dev.recording.index`), kept as
lines are written.

A write can also fail part way (``ENOSPC``: the disk is full). Then the file is truncated
back to where the line began, so the next line written once there is space again is not
glued to a torn one: the file only ever holds whole lines (and the index only lines
that were written). Exchanges that could not be written are counted; the first failure
and the resumption are published as
:class:`~webhook_dev.reviews.exchange.RecordingFailed` /
:class:`~webhook_dev.reviews.exchange.RecordingResumed` events (the console prints
them) and :attr:`Recorder.missed` keeps the total for status views.

Recordings hold cluster objects, so files are created 0600. Secret values are redacted by
default with the per-workstation HMAC key (:mod:`~webhook_dev.recording.redaction_key`):
equal secrets give equal markers across your recordings, and nothing else can be learned
from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import datetime
from pathlib import Path

from webhook_dev.errors import RecordingError
from webhook_dev.recording import format as recording
from webhook_dev.recording.index import IndexAppender
from webhook_dev.recording.redaction_key import redaction_key
from webhook_dev.reviews.exchange import (
    Exchange,
    Hooks,
    RecordingFailed,
    RecordingMissed,
    RecordingResumed,
    now,
)

FSYNC_DELAY = 0.2
DEFAULT_MAX_SIZE = 256 * 2**20  # --record-max-size: 256 MiB a file


def part_path(path: Path, part: int) -> Path:
    """The name of a recording's ``part``-th file: ``session.jsonl``, then
    ``session.1.jsonl``, ``session.2.jsonl``... (no file is ever renamed, so the index
    beside each stays valid and a reader holding one keeps reading the right data)."""
    if part == 0:
        return path
    return path.with_name(f"{path.stem}.{part}{path.suffix}")


class Recorder:
    """Subscriber: appends every exchange that carries an AdmissionReview request.

    Exchanges the proxy refused as bad input (no usable request) are shown on the console
    but not recorded: there is nothing to replay.

    :param hooks: where to publish recording failures and resumption (optional).
    """

    def __init__(
        self,
        path: Path,
        *,
        redact: bool = True,
        max_size: int | None = None,
        index: bool = True,
        hooks: Hooks | None = None,
    ) -> None:
        self.first_path = path
        self._hooks = hooks
        self.recorded = 0
        self.missed = 0  # exchanges never written, in all
        self._failing_since: datetime | None = None
        self._missed_in_run = 0
        self._key = redaction_key() if redact else None
        self._max_size = max_size or None
        self._index_lines = index
        self._index: IndexAppender | None = None
        self._part = 0
        self._fd: int | None = None
        self._size = 0
        self._fsync_pending = False
        self._open(path)
        if self._max_size is not None:
            while self._size >= self._max_size:  # a session appending to a full file
                self._part += 1
                self._open(part_path(path, self._part))

    def _open(self, path: Path) -> None:
        if self._fd is not None:
            self.close()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._size = os.fstat(self._fd).st_size
        except OSError as error:
            raise RecordingError(f"cannot open recording {path}: {error.strerror}") from error
        self.path = path
        self._index = IndexAppender(path) if self._index_lines else None

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r})"

    def on_exchange(self, exchange: Exchange) -> None:
        if self._fd is None or exchange.request_review is None:
            return
        data = recording.encode(exchange, redaction_key=self._key).encode()
        if self._max_size is not None and self._size and self._size + len(data) > self._max_size:
            self._part += 1
            self._open(part_path(self.first_path, self._part))
        assert self._fd is not None
        offset = self._size
        try:
            self._append(self._fd, data)
        except OSError as error:
            self._failed(error)
            return
        if self._index is not None:
            self._index.add(exchange, offset, len(data))
        self.recorded += 1
        if self._failing_since is not None:
            self._resumed()
        self._schedule_fsync()

    @property
    def failing(self) -> bool:
        """Whether the last write failed (recording is paused until one succeeds)."""
        return self._failing_since is not None

    def _append(self, fd: int, data: bytes) -> None:
        """Write ``data`` whole, or leave the file as it was (truncated back) and raise."""
        start = self._size
        view = memoryview(data)
        try:
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except OSError:
            with contextlib.suppress(OSError):  # shrinking needs no space
                os.ftruncate(fd, start)
            with contextlib.suppress(OSError):
                self._size = os.fstat(fd).st_size
            raise
        self._size = start + len(data)

    def _failed(self, error: OSError) -> None:
        self.missed += 1
        self._missed_in_run += 1
        if self._failing_since is None:
            self._failing_since = now()
            if self._hooks is not None:
                reason = error.strerror or str(error)
                self._hooks.event(RecordingFailed(str(self.path), reason, self._missed_in_run))
        elif self._hooks is not None:
            self._hooks.event(RecordingMissed(str(self.path), self._missed_in_run))

    def _resumed(self) -> None:
        since, missed = self._failing_since, self._missed_in_run
        self._failing_since, self._missed_in_run = None, 0
        if self._hooks is not None and since is not None:
            self._hooks.event(RecordingResumed(str(self.path), missed, since))

    def report_unresolved(self) -> None:
        """At exit while still failing: say the final count (no resumption will)."""
        if self._failing_since is not None and self._hooks is not None:
            self._hooks.event(
                RecordingFailed(str(self.path), "still failing at exit", self._missed_in_run)
            )

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._index is not None:
            self._index.close()
            self._index = None

    def _schedule_fsync(self) -> None:
        if self._fsync_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._fsync()
            return
        self._fsync_pending = True
        loop.call_later(FSYNC_DELAY, lambda: loop.run_in_executor(None, self._fsync))

    def _fsync(self) -> None:
        self._fsync_pending = False
        fd = self._fd
        if fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(fd)
