"""What the inspector and the console show of a shadowed call."""

from __future__ import annotations

from tests.unit.recording.test_format import exchange
from tests.unit.recording.test_format_shadow import DENIED
from webhook_dev.inspector.views import detail
from webhook_dev.reviews.comparison import Comparison, Difference
from webhook_dev.reviews.shadow import ControlAnswer, ShadowCall
from webhook_dev.subscribers.console import exchange_line


def differing() -> ShadowCall:
    return ShadowCall(
        entry="policy/validate.example.com",
        control=ControlAnswer(200, DENIED, duration_ms=2.0),
        comparison=Comparison(
            (Difference("allowed", False, True), Difference("status.message", "no", ""))
        ),
    )


def test_the_pane_shows_production_and_the_local_answer_side_by_side() -> None:
    pane = detail(exchange(shadow=differing()))["shadow"]
    assert pane["differed"] == ["allowed", "status.message"]
    assert pane["production"]["meaning"]["allowed"] is False
    assert pane["local"]["allowed"] is True
    changed = [row for row in pane["diff"] if row["kind"] == "changed"]
    assert any('"allowed": false' in row["left"] and "true" in row["right"] for row in changed)


def test_a_call_without_production_answer_says_why() -> None:
    call = ShadowCall(entry="e/x", skipped="production declares sideEffects: Some")
    pane = detail(exchange(shadow=call))["shadow"]
    assert pane["production"] is None and pane["diff"] is None
    assert pane["skipped"].startswith("production declares")


def test_the_console_marks_a_differing_call_with_its_fields() -> None:
    line = exchange_line(exchange(shadow=differing())).plain
    assert line.endswith("≠ production: allowed, status.message")
    agreeing = ShadowCall(entry="e/x", control=ControlAnswer(200, DENIED), comparison=Comparison())
    assert exchange_line(exchange(shadow=agreeing)).plain.endswith("= production")
    noisy = ShadowCall(
        entry="e/x",
        control=ControlAnswer(200, DENIED),
        comparison=Comparison(noise=(Difference("object", {}, {}),)),
    )
    assert exchange_line(exchange(shadow=noisy)).plain.endswith("= production  (noise: object)")
