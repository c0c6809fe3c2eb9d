"""Where the inspector's list comes from: the live ring, or recordings through their index.

The page asks for a window of rows (offset, limit) under a filter and opens one exchange
at a time, so neither side ever holds a whole recording: :class:`RecordingStore` answers
from the SQLite indexes (:mod:`~webhook_dev.recording.index`) and reads a row's exchange
from its file by offset; :class:`FeedStore` answers from the live ring of ``serve`` and
``up``. Several recordings are merged newest first by time.

SQLite calls run in a worker thread (one at a time, under a lock) so a filter over a
million rows never stalls the event loop that also serves the page's live feed.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from webhook_dev.inspector.feed import ExchangeFeed
from webhook_dev.recording.index import RecordingIndex
from webhook_dev.recording.query import Query
from webhook_dev.reviews.exchange import Exchange
from webhook_dev.reviews.json_body import JsonObject

FACETS = ("kind", "namespace", "operation")
Transform = Callable[[Exchange], Exchange]


class Store(Protocol):
    """What the server needs from a list source."""

    async def page(self, query: Query, offset: int, limit: int) -> tuple[int, list[JsonObject]]:
        """``(total matching, rows)``, newest first."""
        ...

    async def get(self, exchange_id: str) -> Exchange | None: ...

    async def facets(self) -> dict[str, list[str]]: ...

    async def count(self) -> int: ...


class FeedStore:
    """The live ring (at most its capacity of rows), filtered in memory."""

    def __init__(self, feed: ExchangeFeed) -> None:
        self.feed = feed

    async def page(self, query: Query, offset: int, limit: int) -> tuple[int, list[JsonObject]]:
        rows = [row for row in reversed(self.feed.rows()) if query.matches(row)]
        return len(rows), rows[offset : offset + limit]

    async def get(self, exchange_id: str) -> Exchange | None:
        return self.feed.get(exchange_id)

    async def facets(self) -> dict[str, list[str]]:
        values: dict[str, set[str]] = {name: set() for name in FACETS}
        for row in self.feed.rows():
            for name in FACETS:
                if row.get(name):
                    values[name].add(str(row[name]))
        return {name: sorted(found) for name, found in values.items()}

    async def count(self) -> int:
        return len(self.feed)


class RecordingStore:
    """Recordings through their indexes. ``transform`` is applied to each exchange read
    (redaction of what a ``--show-secrets`` recording holds, unless asked to show it)."""

    def __init__(self, indexes: Sequence[RecordingIndex], transform: Transform | None = None):
        self.indexes = list(indexes)
        self.transform = transform
        self._lock = threading.Lock()

    def close(self) -> None:
        for index in self.indexes:
            index.close()

    async def _run(self, function: Callable[[], Any]) -> Any:
        def locked() -> Any:
            with self._lock:
                return function()

        return await asyncio.to_thread(locked)

    async def page(self, query: Query, offset: int, limit: int) -> tuple[int, list[JsonObject]]:
        return await self._run(lambda: self.page_now(query, offset, limit))  # type: ignore[no-any-return]

    def page_now(self, query: Query, offset: int, limit: int) -> tuple[int, list[JsonObject]]:
        """:meth:`page`, in the calling thread (benchmarks and tests)."""
        if len(self.indexes) == 1:
            return self.indexes[0].page(query, offset=offset, limit=limit)
        total = sum(index.count(query) for index in self.indexes)
        # Newest first by time across files: each index gives its first offset+limit rows
        # in time order; a merge of those has the window's rows.
        ranked = [
            index.rows(query, offset=0, limit=offset + limit, by_time=True)
            for index in self.indexes
        ]
        merged = heapq.merge(*ranked, key=lambda row: row["time"], reverse=True)
        return total, list(itertools.islice(merged, offset, offset + limit))

    async def get(self, exchange_id: str) -> Exchange | None:
        def find() -> Exchange | None:
            for index in self.indexes:
                found = index.get(exchange_id)
                if found is not None:
                    return self.transform(found) if self.transform is not None else found
            return None

        return await self._run(find)  # type: ignore[no-any-return]

    async def facets(self) -> dict[str, list[str]]:
        def collect() -> dict[str, list[str]]:
            return {
                name: sorted({value for index in self.indexes for value in index.distinct(name)})
                for name in FACETS
            }

        return await self._run(collect)  # type: ignore[no-any-return]

    async def count(self) -> int:
        return await self._run(lambda: sum(index.count() for index in self.indexes))  # type: ignore[no-any-return]
