"""The inspector's subscriber: a bounded ring of recent exchanges and a fan-out to browsers.

It hangs off the stack's hook like the recorder. ``on_exchange`` runs on the event loop
that serves the calls, so it only stores the exchange and, when a page is open, puts its
list row on each page's queue — it never waits for a browser. The redaction and the row
are made when something first reads them (an open page, the list, a detail), not for
every call: most calls are never looked at, and both cost more than the call itself.
A page that falls behind by more than :data:`QUEUE_LIMIT` messages is cut off; its
EventSource reconnects and fetches the list again, so it misses nothing still in the ring.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from webhook_dev.inspector import views
from webhook_dev.recording.redaction import may_hold_secrets_exchange, redact
from webhook_dev.recording.redaction_key import redaction_key as workstation_key
from webhook_dev.reviews import fast_json
from webhook_dev.reviews.exchange import (
    Event,
    Exchange,
    GenerationExited,
    GenerationFailed,
    GenerationMemory,
    GenerationReady,
    RecordingFailed,
    RecordingMissed,
    RecordingResumed,
    ReloadStarted,
)
from webhook_dev.reviews.json_body import JsonObject
from webhook_dev.subscribers.call_stats import CallStats

CAPACITY = 1000
# The ring's other bound: the reviews' JSON it holds. Parsed, a review takes several times
# its text, and the page only lists the newest; without it 1000 reviews of 512 KiB (big
# objects, a fuzzer) kept serve's RSS growing past 400 MiB (docs/benchmarks.md).
MAX_BYTES = 16 * 2**20
QUEUE_LIMIT = 1000


@dataclass(frozen=True)
class Message:
    """One server-sent event: ``kind`` is its event name, ``data`` its JSON payload."""

    kind: str
    data: JsonObject


@dataclass(eq=False)  # compared and hashed by identity: kept in a set
class Listener:
    """One open page: its queue, and whether it fell too far behind to keep."""

    queue: asyncio.Queue[Message] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)


class ExchangeFeed:
    """Keeps the newest ``capacity`` exchanges (oldest dropped first) and tells listeners.

    Secret values are redacted as the recorder redacts them (same key, same markers) on
    every way out of the ring (rows, messages, :meth:`get`), so no page can show them;
    ``redact=False`` (``--show-secrets``) shows them in clear.
    """

    def __init__(
        self, capacity: int = CAPACITY, *, redact: bool = True, max_bytes: int = MAX_BYTES
    ) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._sizes: dict[str, int] = {}  # the reviews' JSON length, by exchange id
        self._bytes = 0
        self._redact = redact
        self._key: bytes | None = None
        # As added, until first read; then redacted, with its list row.
        self._exchanges: OrderedDict[str, Exchange | tuple[Exchange, JsonObject]] = OrderedDict()
        self._listeners: set[Listener] = set()
        self.stats = CallStats()  # every exchange added, also those the ring dropped
        self.status: JsonObject = {"generation": None, "state": "starting", "message": ""}
        self.recording: JsonObject = {"failing": False, "missed": 0, "message": ""}
        self._missed_before = 0  # exchanges not recorded in failures already resumed from
        self._failure = ""  # why the current run of failures began

    @property
    def redaction_key(self) -> bytes | None:
        """The workstation's key (read or made on first use), ``None`` when not redacting."""
        if self._redact and self._key is None:
            self._key = workstation_key()
        return self._key

    def __repr__(self) -> str:
        return f"<ExchangeFeed {len(self._exchanges)}/{self.capacity}>"

    # --- hook subscriber -------------------------------------------------------------

    def on_exchange(self, exchange: Exchange) -> None:
        self.add(exchange)

    def on_event(self, event: Event) -> None:
        """Track the upstream's state for the page header (which code answers now)."""
        if isinstance(event, ReloadStarted):
            self.status = {**self.status, "state": "reloading", "message": event.reason}
        elif isinstance(event, GenerationReady):
            self.status = {"generation": event.generation, "state": "ready", "message": ""}
        elif isinstance(event, GenerationFailed):
            message = event.error.strip().splitlines()[-1:] or ["failed to start"]
            self.status = {
                "generation": event.still_serving,
                "state": "failed",
                "message": message[0],
            }
        elif isinstance(event, GenerationExited):
            why = event.reason or f"exited ({event.returncode})"
            self.status = {
                **self.status,
                "state": "exited",
                "message": f"{event.kind.value} {event.generation} {why}",
            }
        elif isinstance(event, GenerationMemory):
            self.status = {**self.status, "rss_bytes": event.rss_bytes}
            if event.over_limit:
                self.status["memory_warning"] = (
                    f"worker {event.generation} uses {event.rss_bytes // 2**20} MiB of memory"
                )
        elif isinstance(event, RecordingFailed | RecordingMissed | RecordingResumed):
            if isinstance(event, RecordingResumed):
                self._missed_before += event.missed
            if isinstance(event, RecordingFailed):
                self._failure = event.error
            failing = not isinstance(event, RecordingResumed)
            missed = self._missed_before + (event.missed if failing else 0)
            self.recording = {
                "failing": failing,
                "missed": missed,
                "message": _recording_message(event, self._failure, missed),
            }
            self._publish(Message("recording", self.recording))
            return
        else:
            return
        self._publish(Message("status", self.status))

    # --- reading ---------------------------------------------------------------------

    def add(self, exchange: Exchange) -> None:
        self.stats.on_exchange(exchange)
        self._exchanges[exchange.id] = exchange
        size = _review_bytes(exchange)
        self._bytes += size - self._sizes.get(exchange.id, 0)
        self._sizes[exchange.id] = size
        while len(self._exchanges) > self.capacity or (
            self._bytes > self.max_bytes and len(self._exchanges) > 1
        ):
            dropped, _ = self._exchanges.popitem(last=False)
            self._bytes -= self._sizes.pop(dropped, 0)
        if self._listeners:
            _, row = self._shown(exchange.id)
            self._publish(Message("exchange", row))

    def _shown(self, exchange_id: str) -> tuple[Exchange, JsonObject]:
        """The exchange as a page may see it (redacted) and its list row, made once."""
        entry = self._exchanges[exchange_id]
        if isinstance(entry, tuple):
            return entry
        exchange = entry
        if self._redact and may_hold_secrets_exchange(exchange):
            key = self.redaction_key
            assert key is not None
            exchange = redact(exchange, key)
        shown = (exchange, views.summary(exchange))
        self._exchanges[exchange_id] = shown
        return shown

    def get(self, exchange_id: str) -> Exchange | None:
        if exchange_id not in self._exchanges:
            return None
        return self._shown(exchange_id)[0]

    def rows(self) -> list[JsonObject]:
        """List rows, oldest first."""
        return [self._shown(exchange_id)[1] for exchange_id in list(self._exchanges)]

    def __len__(self) -> int:
        return len(self._exchanges)

    # --- listening -------------------------------------------------------------------

    @contextmanager
    def listen(self) -> Iterator[Listener]:
        """A listener receiving every message published while the block runs."""
        listener = Listener()
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    def _publish(self, message: Message) -> None:
        for listener in list(self._listeners):
            try:
                listener.queue.put_nowait(message)
            except asyncio.QueueFull:
                listener.overflowed.set()
                self._listeners.discard(listener)

    def listener_count(self) -> int:
        return len(self._listeners)

    def describe(self) -> dict[str, Any]:
        """For the page: exchanges kept (``count``), the ring's size, calls seen, status."""
        return {
            "count": len(self),
            "capacity": self.capacity,
            "calls": self.stats.calls,
            "client_closed": self.stats.client_closed,
            "failed": self.stats.failed,
            "status": self.status,
            "recording": self.recording,
        }


def _review_bytes(exchange: Exchange) -> int:
    """How much review text an exchange holds (orjson: microseconds for a usual review)."""
    return sum(
        len(fast_json.dumps_compact(review))
        for review in (exchange.request_review, exchange.response_review)
        if review is not None
    )


def _recording_message(
    event: RecordingFailed | RecordingMissed | RecordingResumed, failure: str, missed: int
) -> str:
    """The page's line; while failing it counts every exchange missed so far (``missed``,
    the count beside it), not only those of the failure under way."""
    if not isinstance(event, RecordingResumed):
        return f"recording failed ({failure}): {missed} exchanges not recorded so far"
    since = event.since.isoformat(timespec="seconds")
    return f"recording resumed: {event.missed} exchanges not recorded since {since}"
