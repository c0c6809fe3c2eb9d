from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from tests.reviews import request_review
from webhook_dev.errors import RecordingError
from webhook_dev.recording import format as recording
from webhook_dev.recording import redaction
from webhook_dev.reviews.admission import Flag
from webhook_dev.reviews.exchange import Exchange

KEY = b"k" * 32


def secret(**data: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": data}


def exchange(request: dict[str, object] | None = None, **fields: object) -> Exchange:
    return Exchange(
        id="abc",
        started=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        path="/mutate?timeout=10s",
        http_status=200,
        request_review=request or request_review(),
        response_review={
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": "3f1c-uid", "allowed": True},
        },
        duration_ms=1.5,
        flags=[Flag("uid-mismatch", "x")],
        **fields,  # type: ignore[arg-type]
    )


def test_a_line_round_trips_with_its_version() -> None:
    line = recording.encode(exchange(), redaction_key=None)
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line)["version"] == recording.VERSION
    back = recording.decode(line)
    assert back.request_review == exchange().request_review
    assert back.flags == [Flag("uid-mismatch", "x")]
    assert back.started == exchange().started


def test_an_unknown_version_is_refused_with_a_clear_message() -> None:
    line = json.dumps({"version": 99, "id": "x", "time": "2026-01-01T00:00:00+00:00"})
    with pytest.raises(RecordingError, match="version 99 is not supported"):
        recording.decode(line, where="rec.jsonl:1")


def test_an_incomplete_last_line_is_skipped_and_a_broken_middle_line_too_unless_strict() -> None:
    good = recording.encode(exchange(), redaction_key=None)
    exchanges, warnings = recording.decode_lines(good + good[:40], source="rec.jsonl")
    assert len(exchanges) == 1 and "incomplete last line" in warnings[0]
    exchanges, warnings = recording.decode_lines(good[:40] + "\n" + good, source="rec.jsonl")
    assert len(exchanges) == 1 and "rec.jsonl:1: skipped a damaged line" in warnings[0]
    with pytest.raises(RecordingError, match=r"rec\.jsonl:1"):
        recording.decode_lines(good[:40] + "\n" + good, source="rec.jsonl", strict=True)


def test_secret_values_are_redacted_with_markers_that_keep_equality() -> None:
    review = request_review(
        secret(password="aHVudGVyMg==", same="aHVudGVyMg==", other="eA=="), kind="Secret"
    )
    line = json.loads(recording.encode(exchange(review), redaction_key=KEY))
    data = line["request"]["request"]["object"]["data"]
    assert "aHVudGVyMg==" not in json.dumps(line)
    assert all(v.startswith(redaction.REDACTED_PREFIX) for v in data.values())
    assert data["password"] == data["same"] != data["other"]


def patched_secret_answer() -> dict[str, object]:
    """An answer whose patch writes a Secret value (``c2VjcmV0``)."""
    patch = [{"op": "add", "path": "/data/token", "value": "c2VjcmV0"}]
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": "3f1c-uid",
            "allowed": True,
            "patchType": "JSONPatch",
            "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
        },
    }


def test_secret_values_written_by_a_patch_are_redacted_too() -> None:
    review = request_review(secret(a="eA=="), kind="Secret")
    response = patched_secret_answer()
    _, redacted = redaction.redact_exchange(review, response, KEY)
    assert redacted is not None
    ops = json.loads(base64.b64decode(redacted["response"]["patch"]))
    assert ops[0]["value"].startswith(redaction.REDACTED_PREFIX)


def test_redaction_is_idempotent_and_leaves_other_kinds_alone() -> None:
    once = redaction.redact_object(secret(a="eA=="), KEY)
    assert redaction.redact_object(once, KEY) == once
    configmap = {"kind": "ConfigMap", "data": {"a": "b"}}
    assert redaction.redact_object(configmap, KEY) == configmap
