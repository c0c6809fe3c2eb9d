"""The recording's optional ``shadow``: production's answers beside the local code's."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.reviews import request_review
from tests.unit.recording.test_format import KEY, exchange, patched_secret_answer, secret
from webhook_dev.errors import RecordingError
from webhook_dev.recording import format as recording
from webhook_dev.recording import query, redaction
from webhook_dev.recording.index import RecordingIndex
from webhook_dev.reviews.comparison import Comparison, Difference
from webhook_dev.reviews.shadow import ControlAnswer, ShadowCall, ShadowSpec

DENIED = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "response": {"uid": "3f1c-uid", "allowed": False, "status": {"message": "no"}},
}


def shadowed() -> ShadowCall:
    return ShadowCall(
        entry="policy/validate.example.com",
        control=ControlAnswer(200, DENIED, duration_ms=3.25),
        again=ControlAnswer(200, DENIED),
        comparison=Comparison(
            (Difference("allowed", False, True),), noise=(Difference("warnings", [], ["x"]),)
        ),
    )


def test_a_shadowed_exchange_round_trips_with_both_answers() -> None:
    line = recording.encode(exchange(shadow=shadowed()), redaction_key=None)
    written = json.loads(line)["shadow"]
    assert written["differed"] == ["allowed"] and written["noise"] == ["warnings"]
    assert written["control"]["response"] == DENIED
    back = recording.decode(line).shadow
    assert back is not None and back.control is not None and back.again is not None
    assert back.control.review == DENIED and back.control.duration_ms == 3.25
    assert back.differed and back.noisy and back.compared
    assert back.entry == "policy/validate.example.com"


def test_a_line_without_shadow_still_opens() -> None:
    assert recording.decode(recording.encode(exchange(), redaction_key=None)).shadow is None


def test_a_malformed_shadow_costs_that_line() -> None:
    line = json.loads(recording.encode(exchange(), redaction_key=None))
    line["shadow"] = {"entry": "x", "differed": "allowed"}
    with pytest.raises(RecordingError, match="malformed"):
        recording.decode(json.dumps(line))


def test_productions_answer_about_a_secret_is_redacted_too() -> None:
    review = request_review(secret(a="eA=="), kind="Secret")
    answer = patched_secret_answer()
    call = ShadowCall(entry="e/x", control=ControlAnswer(200, answer), comparison=Comparison())
    line = recording.encode(exchange(review, shadow=call), redaction_key=KEY)
    control = json.loads(line)["shadow"]["control"]["response"]["response"]
    ops = json.loads(base64.b64decode(control["patch"]))
    assert ops[0]["value"].startswith(redaction.REDACTED_PREFIX)


@pytest.mark.parametrize(
    ("side_effects", "dry_run", "allowed"),
    [
        ("None", False, True),
        ("NoneOnDryRun", True, True),
        ("NoneOnDryRun", False, False),
        ("Some", True, False),
        (None, False, False),
    ],
)
def test_production_is_called_again_only_without_side_effects(
    side_effects: str | None, dry_run: bool, allowed: bool
) -> None:
    assert (ShadowSpec().may_call(side_effects, dry_run) is None) is allowed
    assert ShadowSpec(allow_side_effects=True).may_call(side_effects, dry_run) is None


def test_is_differed_finds_exactly_the_differing_calls_in_the_index(tmp_path: Path) -> None:
    agreed = ShadowCall(entry="e/x", control=ControlAnswer(200, DENIED), comparison=Comparison())
    noisy = ShadowCall(
        entry="e/x",
        control=ControlAnswer(200, DENIED),
        comparison=Comparison(noise=(Difference("object", None, None),)),
    )
    calls = [shadowed(), agreed, None, noisy, shadowed()]
    path = tmp_path / "session.jsonl"
    lines = []
    for number, call in enumerate(calls):
        one = exchange(shadow=call)
        one.id = f"x{number}"
        lines.append(recording.encode(one, redaction_key=None))
    path.write_text("".join(lines))
    index, _ = RecordingIndex.open(path)
    for text, expected in [
        ("is:differed", ["x0", "x4"]),
        ("-is:differed", ["x1", "x2", "x3"]),
        ("shadow:noisy", ["x3"]),
        ("shadow:agreed", ["x1"]),
    ]:
        parsed = query.parse(text)
        assert sorted(row["id"] for row in index.rows(parsed, limit=10)) == expected, text
        everything = index.rows(limit=10)
        assert sorted(row["id"] for row in everything if parsed.matches(row)) == expected
    index.close()
