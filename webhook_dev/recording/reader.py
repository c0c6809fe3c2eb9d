"""Reading a recording file: every exchange in it, and what was odd about it."""

from __future__ import annotations

from pathlib import Path

from webhook_dev.admission.exchange import Exchange
from webhook_dev.errors import RecordingError
from webhook_dev.recording import format as recording


def read_recording(path: Path) -> tuple[list[Exchange], list[str]]:
    """Exchanges and warnings from a file; :class:`RecordingError` if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise RecordingError(f"recording {path} does not exist") from error
    except (OSError, UnicodeDecodeError) as error:
        raise RecordingError(f"cannot read recording {path}: {error}") from error
    return recording.decode_lines(text, source=str(path))
