"""``serve``/``up --policy``'s stage: exchanges handed on in the order they came, each with
the policy's outcome, the evaluator's slowness or failure recorded, never raised."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text

from webhook_dev.inspector.views import policy_detail
from webhook_dev.policy import live
from webhook_dev.policy.decision import PolicyDecision
from webhook_dev.policy.live import LivePolicy
from webhook_dev.recording import format as recording_format
from webhook_dev.reviews.exchange import Exchange, Hooks, now
from webhook_dev.subscribers.console import policy_mark


class Seen:
    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def on_exchange(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)


class FakeEvaluator:
    """Decides ``deny-*`` names denied, after ``delay[name]`` seconds."""

    policies = ("ValidatingAdmissionPolicy/p",)

    def __init__(self, delays: dict[str, float]) -> None:
        self.delays = delays

    async def decide(self, review: dict[str, Any], side: str, **_: Any) -> PolicyDecision:
        name = review["request"]["name"]
        await asyncio.sleep(self.delays.get(name, 0))
        if name.startswith("deny-"):
            return PolicyDecision(allowed=False, code=403, reason="Forbidden", denial="no")
        return PolicyDecision(allowed=True, matched=("p",))

    async def close(self) -> None:
        pass


def exchange(name: str, *, admission: bool = True) -> Exchange:
    if not admission:
        return Exchange(id=name, started=now(), path="/validate", http_status=400)
    request = {
        "uid": name,
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "resource": {"group": "", "version": "v1", "resource": "configmaps"},
        "namespace": "team-a",
        "name": name,
        "operation": "CREATE",
        "userInfo": {},
        "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}},
    }
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
    return Exchange(
        id=name,
        started=now(),
        path="/validate",
        http_status=200,
        request_review=review | {"request": request},
        response_review=review | {"response": {"uid": name, "allowed": True}},
    )


async def run_stage(exchanges: list[Exchange], delays: dict[str, float]) -> list[Exchange]:
    stage = LivePolicy(Path("/nonexistent"), [])
    stage._evaluator = FakeEvaluator(delays)  # type: ignore[assignment]
    stage._pump = asyncio.ensure_future(stage._hand_on())
    seen = Seen()
    stage.attach(Hooks([seen]))
    for item in exchanges:
        stage.on_exchange(item)
    await stage.drain()
    return seen.exchanges


def test_exchanges_are_handed_on_in_order_each_with_the_policys_outcome() -> None:
    given = [exchange("deny-a"), exchange("b"), exchange("bad", admission=False)]
    seen = asyncio.run(run_stage(given, {"deny-a": 0.05}))
    assert [e.id for e in seen] == ["deny-a", "b", "bad"]
    assert [e.policy and e.policy["outcome"] for e in seen] == ["differs", "agrees", None]
    assert seen[0].policy and seen[0].policy["differences"][0]["field"] == "allowed"


def test_an_evaluator_that_does_not_answer_in_time_is_recorded_as_not_compared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live, "DECISION_TIMEOUT", 0.05)
    [seen] = asyncio.run(run_stage([exchange("slow")], {"slow": 5}))
    assert seen.policy is not None and seen.policy["outcome"] == "not compared"
    assert "did not answer" in seen.policy["unknown"][0]


def test_the_outcome_is_kept_by_the_recording_shown_by_the_console_and_the_inspector() -> None:
    [seen] = asyncio.run(run_stage([exchange("deny-a")], {}))
    line = recording_format.encode(seen, redaction_key=None)
    again = recording_format.decode(line)
    assert again.policy == seen.policy
    mark = policy_mark(again)
    assert isinstance(mark, Text)
    assert mark.plain == "    ≠ policy differs (allowed): denied (403 Forbidden): no"
    detail = policy_detail(again)
    assert detail is not None and detail["outcome"] == "differs"
    assert [row["field"] for row in detail["rows"] if row["differs"]] == ["allowed"]


def test_a_line_without_a_policy_outcome_opens_and_shows_no_mark() -> None:
    plain = exchange("b")
    again = recording_format.decode(recording_format.encode(plain, redaction_key=None))
    assert again.policy is None and policy_mark(again) is None and policy_detail(again) is None
