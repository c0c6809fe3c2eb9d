"""Reading a recording a line at a time, by byte offset, without holding the file.

The index (:mod:`~webhook_dev.recording.index`) needs each line's offset and length to
find it again, and replay needs to walk a file of gigabytes in constant memory; both use
:func:`lines`. :func:`read_at` reads one exchange back from an offset, which is how the
inspector opens a row of a million-line recording in milliseconds.

Offsets are bytes into the file as written (UTF-8 JSON Lines). A last line without its
newline is a write still in flight (or a crash mid-write): it is not yielded, and
:attr:`LineReader.end` stops before it, so an index built now continues from there later.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from webhook_dev.errors import RecordingError
from webhook_dev.recording import format as recording
from webhook_dev.reviews.exchange import Exchange

READ_SIZE = 1 << 20
_BLANK = frozenset(b" \t\r\n\x0b\x0c")


@dataclass(frozen=True)
class Line:
    """One complete line: where it is, and the exchange it holds or why it holds none."""

    offset: int
    length: int  # bytes, newline included
    number: int  # 1-based line number in the file
    exchange: Exchange | None
    error: RecordingError | None = None


class LineReader:
    """Iterates the complete lines of ``path`` from byte ``start`` (a line's beginning).

    :param first_number: the line number of the line at ``start``.
    :param decode: ``False`` yields lines with ``exchange=None`` and no error, for callers
        that only count or that decode themselves (:meth:`raw`).
    """

    def __init__(self, path: Path, *, start: int = 0, first_number: int = 1) -> None:
        self.path = path
        self.start = start
        self.first_number = first_number
        self.end = start  # after iterating: the offset just past the last complete line

    def raw(self) -> Iterator[tuple[int, int, int, bytes]]:
        """``(offset, length, number, bytes)`` for every complete line, blank ones skipped."""
        for offset, length, number, buffer, begin in self._scan():
            yield offset, length, number, buffer[begin : begin + length]

    def positions(self) -> Iterator[tuple[int, int, int]]:
        """``(offset, length, number)`` of every complete line, blank ones skipped, without
        copying any line (``replay --sample`` walks a million lines for a few positions)."""
        for offset, length, number, _, _ in self._scan():
            yield offset, length, number

    def _scan(self) -> Iterator[tuple[int, int, int, bytes, int]]:
        try:
            file = self.path.open("rb")
        except FileNotFoundError as error:
            raise RecordingError(f"recording {self.path} does not exist") from error
        except OSError as error:
            raise RecordingError(f"cannot read recording {self.path}: {error.strerror}") from error
        with file:
            file.seek(self.start)
            offset, number = self.start, self.first_number
            pending = b""
            while True:
                chunk = file.read(READ_SIZE)
                if not chunk:
                    break
                buffer = pending + chunk if pending else chunk
                begin = 0
                find = buffer.find
                while True:
                    newline = find(b"\n", begin)
                    if newline < 0:
                        break
                    length = newline + 1 - begin
                    # Blank: whitespace only. A line that starts otherwise (every real
                    # one starts with "{") is not, without copying it to strip it.
                    if buffer[begin] not in _BLANK or buffer[begin : newline + 1].strip():
                        yield offset, length, number, buffer, begin
                    offset += length
                    number += 1
                    begin = newline + 1
                    self.end = offset
                pending = buffer[begin:]

    def __iter__(self) -> Iterator[Line]:
        for offset, length, number, data in self.raw():
            yield decode_line(self.path, offset, length, number, data)


def decode_line(path: Path, offset: int, length: int, number: int, data: bytes) -> Line:
    """A :class:`Line` holding the exchange in ``data``, or the reason it holds none."""
    where = f"{path}:{number}"
    try:
        data.decode("utf-8")  # only to refuse what is not UTF-8, naming the line
        return Line(offset, length, number, recording.decode(data, where=where))
    except UnicodeDecodeError:
        return Line(offset, length, number, None, RecordingError(f"{where}: not UTF-8"))
    except RecordingError as error:
        return Line(offset, length, number, None, error)


def lines(path: Path, *, start: int = 0, first_number: int = 1) -> Iterator[Line]:
    """Every complete line of ``path`` from ``start``, decoded, one at a time."""
    return iter(LineReader(path, start=start, first_number=first_number))


def read_raw(path: Path, offset: int, length: int) -> bytes:
    """The bytes of the line at ``offset`` (``length`` bytes with its newline).

    :raises RecordingError: the file is gone, shorter, or the bytes there are not a line.
    """
    try:
        with path.open("rb") as file:
            file.seek(offset)
            data = file.read(length)
    except OSError as error:
        raise RecordingError(f"cannot read recording {path}: {error.strerror}") from error
    if len(data) != length or not data.endswith(b"\n"):
        raise RecordingError(f"{path}: no line at byte {offset} (the file changed?)")
    return data


def read_at(path: Path, offset: int, length: int, *, where: str | None = None) -> Exchange:
    """The exchange on the line at ``offset`` (``length`` bytes with its newline).

    :raises RecordingError: the file is gone, shorter, or the bytes there are not a line
        (a recording replaced behind its index: rebuild the index).
    """
    data = read_raw(path, offset, length)
    try:
        data.decode("utf-8")
        return recording.decode(data, where=where or f"{path}@{offset}")
    except UnicodeDecodeError as error:
        raise RecordingError(f"{path}@{offset}: not UTF-8") from error
