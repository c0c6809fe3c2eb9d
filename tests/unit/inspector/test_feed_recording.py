"""The inspector's recording line: one count, said the same in the number and the text."""

from __future__ import annotations

from datetime import UTC, datetime

from webhook_dev.inspector.feed import ExchangeFeed
from webhook_dev.reviews.exchange import RecordingFailed, RecordingMissed, RecordingResumed

PATH = "/records/rec.jsonl"


def test_a_second_failure_counts_every_exchange_missed_so_far_in_number_and_text() -> None:
    feed = ExchangeFeed()
    feed.on_event(RecordingFailed(PATH, "No space left on device", 1))
    feed.on_event(RecordingResumed(PATH, 1, datetime(2026, 12, 4, tzinfo=UTC)))
    assert feed.recording["failing"] is False and feed.recording["missed"] == 1

    feed.on_event(RecordingFailed(PATH, "No space left on device", 1))
    feed.on_event(RecordingMissed(PATH, 2))

    assert feed.recording["failing"] is True
    assert feed.recording["missed"] == 3
    assert feed.recording["message"] == (
        "recording failed (No space left on device): 3 exchanges not recorded so far"
    )
