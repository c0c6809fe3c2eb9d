"""Replaying large recordings: streamed, filtered, sampled, in parallel, in order.

``replay --jobs N --where QUERY --sample N`` runs through here. Memory stays constant
whatever the file's size: exchanges are read one line at a time (:mod:`~webhook_dev.
recording.stream`), at most ``2 * jobs`` are in flight, and a result leaves as soon as
every earlier one has, so the report keeps the recording's order. ``--sample N`` keeps
N positions (a reservoir over byte offsets, seeded, so a run can be repeated), then
reads just those lines back in file order.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from webhook_dev.errors import RecordingError, ReviewError
from webhook_dev.recording import stream
from webhook_dev.recording.index import RecordingIndex, index_path
from webhook_dev.recording.query import Query
from webhook_dev.recording.summary import summary
from webhook_dev.replay.replayer import ReplayResult, replay_exchange
from webhook_dev.reviews.comparison import NOTHING_IGNORED, Ignore
from webhook_dev.reviews.exchange import Exchange
from webhook_dev.serving.upstream import Upstream

SAMPLE_SEED = 16


@dataclass(frozen=True)
class Selection:
    """Which exchanges to replay: those matching ``where``, then ``sample`` of them."""

    where: Query = field(default_factory=Query)
    sample: int | None = None
    seed: int = SAMPLE_SEED


@dataclass(frozen=True)
class Skipped:
    """A line that holds no exchange (damaged): reported as a warning, never replayed."""

    message: str

    def __str__(self) -> str:
        return self.message


Item = tuple[str, Exchange]  # (where it was recorded: path:line, the exchange)


Position = tuple[Path, int, int, int]  # (file, offset, length, line number)


def selected(
    paths: Sequence[Path], selection: Selection, *, strict: bool = True
) -> Iterator[Item | Skipped]:
    """The exchanges of ``paths`` that ``selection`` keeps, in file order, streamed.

    A damaged line is a :class:`RecordingError` (exit 2), or with ``strict=False`` a
    :class:`Skipped` warning.
    """
    for chosen in _chosen(paths, selection, strict):
        if isinstance(chosen, Skipped):
            yield chosen
        elif isinstance(chosen, Path):
            for line in stream.lines(chosen):
                if line.exchange is None:
                    yield _damaged(line, strict)
                elif _keeps(selection.where, line.exchange):
                    yield f"{chosen}:{line.number}", line.exchange
        else:
            path, offset, length, number = chosen
            where = f"{path}:{number}"
            yield where, stream.read_at(path, offset, length, where=where)


def selected_raw(
    paths: Sequence[Path], selection: Selection, *, strict: bool = True
) -> Iterator[tuple[str, int, bytes] | Skipped]:
    """What :func:`selected` picks, as ``(file, line number, the line's bytes)`` not yet
    decoded (the shards of :mod:`~webhook_dev.replay.shards` decode them, and apply
    ``selection.where`` themselves when no index or sample had to read it here)."""
    for chosen in _chosen(paths, selection, strict):
        if isinstance(chosen, Skipped):
            yield chosen
        elif isinstance(chosen, Path):
            for _, _, number, data in stream.LineReader(chosen).raw():
                yield str(chosen), number, data
        else:
            path, offset, length, number = chosen
            yield str(path), number, stream.read_raw(path, offset, length)


def _chosen(
    paths: Sequence[Path], selection: Selection, strict: bool
) -> Iterator[Position | Skipped | Path]:
    """What ``selection`` picks, without reading the lines themselves: the positions of
    a sample or of an index's matches, warnings, or a whole file to read through (no
    index to ask, no sample)."""
    if selection.sample is not None:
        for found in _sample(paths, selection, strict):
            if isinstance(found, Skipped):
                yield found
            else:
                file_number, offset, length, number = found
                yield paths[file_number], offset, length, number
        return
    for path in paths:
        indexed = _indexed(path, selection.where, strict)
        if indexed is None:
            yield path
            continue
        for hit in indexed:
            yield hit if isinstance(hit, Skipped) else (path, *hit)


def _sample(
    paths: Sequence[Path], selection: Selection, strict: bool
) -> Iterator[tuple[int, int, int, int] | Skipped]:
    """``selection.sample`` positions ``(file no, offset, length, line)`` among those
    ``selection.where`` keeps, in file order (damaged lines as they are met)."""
    assert selection.sample is not None
    # Reservoir sampling over positions: memory is the sample's size, not the file's.
    rng = random.Random(selection.seed)
    reservoir: list[tuple[int, int, int, int]] = []
    seen = 0
    for file_number, path in enumerate(paths):
        for found in _positions(path, selection.where, strict):
            if isinstance(found, Skipped):
                yield found
                continue
            seen += 1
            position = (file_number, *found)
            if len(reservoir) < selection.sample:
                reservoir.append(position)
            else:
                slot = rng.randrange(seen)
                if slot < selection.sample:
                    reservoir[slot] = position
    yield from sorted(reservoir)


def _indexed(
    path: Path, where: Query, strict: bool, *, unfiltered: bool = False
) -> Iterator[tuple[int, int, int] | Skipped] | None:
    """With ``--where`` (or ``unfiltered``: ``--sample`` wants every position) and an
    index beside the recording (``inspect`` or ``serve`` made one): the matching lines'
    positions from it, in file order, instead of decoding or scanning every line (a
    million lines: seconds, against a query). Damaged lines are not in an index: one
    warning says how many were skipped. ``None`` when there is no index, or with
    ``--strict`` (which reads every line anyway)."""
    if (not where and not unfiltered) or strict or not index_path(path).exists():
        return None
    try:
        index, _ = RecordingIndex.open(path)
    except (sqlite3.Error, OSError):
        return None  # a cache we cannot use (read-only, locked): read the lines instead
    return _index_positions(path, index, where)


def _index_positions(
    path: Path, index: RecordingIndex, where: Query
) -> Iterator[tuple[int, int, int] | Skipped]:
    try:
        damaged = int(index.meta().get("damaged", 0))
        if damaged:
            yield Skipped(f"{path}: {damaged} damaged line(s) skipped (not in its index)")
        yield from index.positions(where)
    finally:
        index.close()


def _positions(path: Path, where: Query, strict: bool) -> Iterator[tuple[int, int, int] | Skipped]:
    indexed = _indexed(path, where, strict, unfiltered=True)
    if indexed is not None:
        yield from indexed
        return
    if not where:  # no need to decode a line to count it
        yield from stream.LineReader(path).positions()
        return
    for line in stream.lines(path):
        if line.exchange is None:
            yield _damaged(line, strict)
        elif _keeps(where, line.exchange):
            yield line.offset, line.length, line.number


def _damaged(line: stream.Line, strict: bool) -> Skipped:
    if strict and line.error is not None:
        raise line.error
    return Skipped(f"{line.error}: skipped")


def _keeps(where: Query, exchange: Exchange) -> bool:
    return not where or where.matches(summary(exchange))


async def replay_in_order(
    items: Iterator[Item | Skipped],
    targets: Sequence[Upstream],
    *,
    jobs: int = 1,
    idempotence: bool = False,
    redaction_key: bytes | None = None,
    ignore: Ignore = NOTHING_IGNORED,
) -> AsyncIterator[ReplayResult | Skipped]:
    """Replay ``items`` with up to ``jobs`` calls in flight, spread over ``targets``;
    results come out in the items' order. An exchange without a valid request is a
    :class:`Skipped` (it cannot be sent), not an error of the whole run."""
    jobs = max(1, jobs)
    window: deque[asyncio.Task[ReplayResult | Skipped] | Skipped] = deque()
    started = 0

    async def one(where: str, exchange: Exchange, target: Upstream) -> ReplayResult | Skipped:
        try:
            return await replay_exchange(
                exchange,
                target,
                idempotence=idempotence,
                redaction_key=redaction_key,
                where=where,
                ignore=ignore,
            )
        except ReviewError as error:
            return Skipped(f"{where}: cannot replay ({error})")

    try:
        for item in items:
            if isinstance(item, Skipped):
                window.append(item)
            else:
                where, exchange = item
                target = targets[started % len(targets)]
                started += 1
                window.append(asyncio.ensure_future(one(where, exchange, target)))
            while window and (
                not isinstance(window[0], asyncio.Task) or window[0].done() or _full(window, jobs)
            ):
                head = window.popleft()
                yield head if isinstance(head, Skipped) else await head
        while window:
            head = window.popleft()
            yield head if isinstance(head, Skipped) else await head
    except RecordingError:
        raise
    finally:
        for pending in window:
            if isinstance(pending, asyncio.Task):
                pending.cancel()


def _full(window: deque[asyncio.Task[ReplayResult | Skipped] | Skipped], jobs: int) -> bool:
    """Whether ``jobs`` calls are running: then wait for the oldest before reading on
    (at most ``2 * jobs`` entries wait, finished ones included, bounding memory)."""
    running = sum(1 for entry in window if isinstance(entry, asyncio.Task) and not entry.done())
    return running >= jobs or len(window) >= 2 * jobs
