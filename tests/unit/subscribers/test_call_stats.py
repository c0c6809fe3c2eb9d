"""One call counter for the live panel, the inspector and the session's heartbeat."""

from __future__ import annotations

from datetime import UTC, datetime

from webhook_dev.inspector.feed import ExchangeFeed
from webhook_dev.reviews.exchange import Exchange
from webhook_dev.subscribers.call_stats import CallStats


def _exchange(number: int) -> Exchange:
    started = datetime(2030, 1, 1, 12, 0, number, tzinfo=UTC)
    return Exchange(id=str(number), started=started, path="/mutate", http_status=400)


def test_counts_every_call_remembers_the_last_and_rates_the_last_ten_seconds() -> None:
    now = [0.0]
    stats = CallStats(clock=lambda: now[0])
    assert (stats.calls, stats.last_call, stats.per_second()) == (0, None, 0.0)
    for number, moment in enumerate((0.0, 5.0, 11.0, 12.0)):
        now[0] = moment
        stats.on_exchange(_exchange(number))
    now[0] = 14.0
    assert stats.calls == 4 and stats.per_second() == 0.3
    assert stats.last_call == datetime(2030, 1, 1, 12, 0, 3, tzinfo=UTC)


def test_the_inspector_counts_calls_beyond_the_exchanges_it_keeps() -> None:
    feed = ExchangeFeed(capacity=2)
    for number in range(5):
        feed.on_exchange(_exchange(number))
    described = feed.describe()
    assert (described["count"], described["calls"]) == (2, 5)


def test_a_client_that_left_is_counted_apart_from_failed_calls() -> None:
    feed = ExchangeFeed()
    for number, status in enumerate((200, 499, 499, 500, 504, 400)):
        exchange = _exchange(number)
        exchange.http_status = status
        feed.add(exchange)
    described = feed.describe()
    assert (described["calls"], described["client_closed"], described["failed"]) == (6, 2, 2)


def test_the_inspector_ring_keeps_the_newest_reviews_within_its_byte_budget() -> None:
    """Big reviews (a fuzzer, huge objects) must not pile up by the thousand (issue 23)."""
    feed = ExchangeFeed(capacity=1000, max_bytes=100_000)
    for number in range(50):
        exchange = _exchange(number % 60)
        exchange.id = f"big-{number}"
        exchange.request_review = {"request": {"uid": str(number), "blob": "x" * 10_000}}
        feed.add(exchange)
    kept = [row["id"] for row in feed.rows()]
    assert 1 < len(kept) < 11 and kept[-1] == "big-49"  # the newest, ~100 KB of them
    assert feed.describe()["calls"] == 50
