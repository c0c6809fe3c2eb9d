"""The optional namespace labels of a recording line: written when known, absent in old
lines, refused when not a map of strings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from webhook_dev.errors import RecordingError
from webhook_dev.recording import format as recording_format
from webhook_dev.reviews.exchange import Exchange


def exchange(labels: dict[str, str] | None) -> Exchange:
    return Exchange(
        id="0" * 16, started=datetime(2026, 1, 1, tzinfo=UTC), path="/v", namespace_labels=labels
    )


def test_namespace_labels_round_trip():
    line = recording_format.encode(exchange({"team": "a"}), redaction_key=None)
    assert '"namespace":{"labels":{"team":"a"}}' in line
    assert recording_format.decode(line).namespace_labels == {"team": "a"}


def test_a_line_without_them_reads_as_not_recorded():
    line = recording_format.encode(exchange(None), redaction_key=None)
    assert '"namespace"' not in line
    assert recording_format.decode(line).namespace_labels is None


def test_labels_that_are_not_strings_are_a_malformed_line():
    line = recording_format.encode(exchange({"team": "a"}), redaction_key=None)
    with pytest.raises(RecordingError, match=r"namespace\.labels"):
        recording_format.decode(line.replace('"team":"a"', '"team":1'))
