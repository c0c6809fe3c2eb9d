"""Recordings on disk: the subscriber that appends exchanges.

Each exchange is written as one complete line in a single ``write(2)`` on a file opened
``O_APPEND``, so a crash of webhook-dev never leaves a half line behind a completed one:
every completed line is in the kernel the moment its exchange completes. ``fsync`` (which
only matters if the machine itself goes down) follows within :data:`FSYNC_DELAY` seconds,
off the event loop, and on close.

Recordings hold cluster objects, so files are created 0600. Secret values are redacted by
default with the per-workstation HMAC key (:mod:`~webhook_dev.recording.redaction_key`):
equal secrets give equal markers across your recordings, and nothing else can be learned
from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from webhook_dev.admission.exchange import Exchange
from webhook_dev.errors import RecordingError
from webhook_dev.recording import format as recording
from webhook_dev.recording.redaction_key import redaction_key

FSYNC_DELAY = 0.2


class Recorder:
    """Subscriber: appends every exchange that carries an AdmissionReview request.

    Exchanges the proxy refused as bad input (no usable request) are shown on the console
    but not recorded: there is nothing to replay.
    """

    def __init__(self, path: Path, *, redact: bool = True) -> None:
        self.path = path
        self._key = redaction_key() if redact else None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as error:
            raise RecordingError(f"cannot open recording {path}: {error.strerror}") from error
        self._fsync_pending = False

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r})"

    def on_exchange(self, exchange: Exchange) -> None:
        if self._fd is None or exchange.request_review is None:
            return
        data = recording.encode(exchange, redaction_key=self._key).encode()
        while data:
            written = os.write(self._fd, data)
            data = data[written:]
        self._schedule_fsync()

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

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
