"""Reading a recording file: its exchanges one at a time, and what was odd about it.

Streamed: a line is read, decoded and handed on before the next is read, so replaying a
recording of gigabytes holds one exchange at a time, not the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from webhook_dev.errors import RecordingError
from webhook_dev.recording import format as recording
from webhook_dev.recording.format import RecordingWarning
from webhook_dev.reviews.exchange import Exchange

__all__ = ["RecordingWarning", "iter_recording", "open_check", "read_recording"]


def open_check(path: Path) -> None:
    """:class:`RecordingError` now if ``path`` cannot be opened, before anything is done."""
    try:
        with path.open("rb"):
            pass
    except FileNotFoundError as error:
        raise RecordingError(f"recording {path} does not exist") from error
    except OSError as error:
        raise RecordingError(f"cannot read recording {path}: {error.strerror}") from error


def iter_recording(path: Path, *, strict: bool = False) -> Iterator[Exchange | RecordingWarning]:
    """Each exchange in ``path``, and a warning for each damaged line skipped.

    ``strict``: a damaged line is a :class:`RecordingError` instead (exit 2).
    """
    open_check(path)
    try:
        with path.open(encoding="utf-8", errors="surrogateescape", newline="\n") as lines:
            yield from recording.iter_lines(lines, source=str(path), strict=strict)
    except OSError as error:
        raise RecordingError(f"cannot read recording {path}: {error.strerror}") from error


def read_recording(path: Path, *, strict: bool = False) -> tuple[list[Exchange], list[str]]:
    """All exchanges and warnings from a file; :class:`RecordingError` if it cannot be read."""
    exchanges: list[Exchange] = []
    warnings: list[str] = []
    for item in iter_recording(path, strict=strict):
        if isinstance(item, RecordingWarning):
            warnings.append(str(item))
        else:
            exchanges.append(item)
    return exchanges, warnings
