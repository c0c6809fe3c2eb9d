"""One recorded exchange through the policies and compared with the webhook's answer, and
many in the recording's order with several evaluations in flight.

The webhook's recorded answer is the control and always wins; the policies are the
candidate: what they could not decide (a missing namespace, authorizer or param) is
reported as not comparable, and the evaluator's own failure is recorded in the result,
never raised mid-run.
"""

from __future__ import annotations

import asyncio
import difflib
import json
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from webhook_dev.errors import ReviewError
from webhook_dev.policy.decision import PolicyDecision, Side, compare, live_record, side_of
from webhook_dev.policy.evaluator import EvaluatorFailed, PolicyEvaluator
from webhook_dev.recording.redaction import REDACTED_PREFIX, is_about_secrets
from webhook_dev.reviews import admission, json_body, kinds
from webhook_dev.reviews.admission import AdmissionRequest, AdmissionResponse
from webhook_dev.reviews.comparison import Comparison, not_comparable
from webhook_dev.reviews.exchange import Exchange
from webhook_dev.reviews.json_body import JsonObject

ADMISSION_REVIEWS = {admission.KIND: admission.VERSIONS}
_REDACTED = "the Secret's values (the recording holds them redacted; see --show-secrets)"
_UNKNOWN_SIDE = (
    "the recording does not say which configuration called "
    "(use --webhook, or /validate and /mutate paths)"
)


@dataclass
class PolicyCheck:
    """The policies against the webhook for one exchange."""

    where: str
    exchange: Exchange
    comparison: Comparison
    side: Side | None = None
    decision: PolicyDecision | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def compared(self) -> bool:
        return self.comparison.comparable

    @property
    def passed(self) -> bool:
        return self.comparison.matches

    def to_record(self) -> JsonObject:
        """The outcome as ``serve``/``up --policy`` keep it in the recording."""
        return live_record(self.side, self.comparison, self.decision)

    def to_json(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "id": self.exchange.id,
            "side": self.side,
            "compared": self.compared,
            "passed": self.passed,
            "unknown": list(self.comparison.unknown),
            "differences": [
                {"field": d.field, "webhook": d.expected, "policy": d.actual}
                for d in self.comparison.differences
            ],
            "policy": self.decision.to_json() if self.decision else None,
            "notes": self.notes,
        }


async def check_exchange(
    exchange: Exchange,
    evaluator: PolicyEvaluator,
    *,
    where: str,
    side: Side | None = None,
    objects: bool = False,
) -> PolicyCheck:
    """Decide ``exchange``'s request by the policies and compare with its answer.

    ``side`` says which configuration's webhook answered (else it is read from the
    recording: :func:`~webhook_dev.policy.decision.side_of`). ``objects``: keep the
    mutated objects in the decision even where they agree (``--json`` shows them).
    """
    review_kind = exchange.review_kind
    if review_kind is not kinds.ADMISSION:
        what = review_kind.name if review_kind else "no review"
        reason = f"a {what} (only admissions are compared with a policy)"
        return PolicyCheck(where, exchange, not_comparable([reason]))
    side = side or side_of(exchange.path, exchange.response)
    if side is None:
        return PolicyCheck(
            where,
            exchange,
            not_comparable([_UNKNOWN_SIDE]),
        )
    try:
        # Each field's type, not the door's walk of every value (depth, Unicode): the
        # proxy walked it when it was recorded, the evaluator decodes it again anyway,
        # and the walk was half of this process's time a request.
        review = json_body.load_review(exchange.request_review or {}, ADMISSION_REVIEWS)
        request = admission.from_review(review)
    except ReviewError as error:
        return PolicyCheck(
            where, exchange, not_comparable([f"not a valid request ({error})"]), side
        )
    if _redacted_secret(exchange):
        return PolicyCheck(where, exchange, not_comparable([_REDACTED]), side)
    control = _control(request, exchange)
    if control is None:
        reason = f"the webhook gave no answer (HTTP {exchange.http_status or 'none'})"
        return PolicyCheck(where, exchange, not_comparable([reason]), side)
    # What the webhook made of the object: its patch (or "" for none), applied by the
    # evaluator as the apiserver applies it; a patch it could not even decode leaves the
    # control object unknown (and the objects differ).
    control_patch = None
    if side == "mutating" and control.allowed:
        if control.patch is not None:
            control_patch = str(exchange.response.get("patch"))
        elif "patch" not in exchange.response:
            control_patch = ""
    try:
        decision = await evaluator.decide(
            exchange.request_review or {},
            side,
            namespace_labels=exchange.namespace_labels,
            control_patch=control_patch,
            objects=objects,
        )
    except EvaluatorFailed as error:
        return PolicyCheck(where, exchange, not_comparable([str(error)]), side)
    if decision.error:
        return PolicyCheck(
            where,
            exchange,
            not_comparable([f"the evaluation failed ({decision.error})"]),
            side,
            decision,
        )
    return PolicyCheck(where, exchange, compare(control, decision, side), side, decision)


def _redacted_secret(exchange: Exchange) -> bool:
    """A Secret whose values the recording holds redacted: the apiserver could not even
    decode it, and a policy may read them."""
    request = exchange.request
    if not is_about_secrets(request):
        return False
    return any(
        isinstance(value, str) and value.startswith(REDACTED_PREFIX)
        for name in ("object", "oldObject")
        if isinstance(request.get(name), dict)
        for field in ("data", "stringData")
        for value in (request[name].get(field) or {}).values()
    )


def _control(request: AdmissionRequest, exchange: Exchange) -> AdmissionResponse | None:
    if exchange.http_status != 200 or exchange.response_review is None:
        return None
    meaning, _ = admission.read_response(request, exchange.response_review, apply=False)
    return meaning


async def check_in_order(
    items: Iterable[tuple[str, Exchange] | Any],
    evaluators: Sequence[PolicyEvaluator],
    *,
    jobs: int = 1,
    side: Side | None = None,
    objects: bool = False,
) -> AsyncIterator[PolicyCheck | Any]:
    """Check ``items`` (``(where, exchange)``; anything else passes through, in place)
    with up to ``jobs`` decisions in flight over ``evaluators``, in the items' order."""
    window: deque[asyncio.Future[PolicyCheck] | Any] = deque()
    limit = max(1, jobs) * 2
    started = 0
    try:
        for item in items:
            if isinstance(item, tuple):
                where, exchange = item
                evaluator = evaluators[started % len(evaluators)]
                started += 1
                window.append(
                    asyncio.ensure_future(
                        check_exchange(exchange, evaluator, where=where, side=side, objects=objects)
                    )
                )
            else:
                window.append(item)
            while window and (
                not isinstance(window[0], asyncio.Future)
                or window[0].done()
                or len(window) >= limit
            ):
                head = window.popleft()
                yield (await head) if isinstance(head, asyncio.Future) else head
        while window:
            head = window.popleft()
            yield (await head) if isinstance(head, asyncio.Future) else head
    finally:
        for pending in window:
            if isinstance(pending, asyncio.Future):
                pending.cancel()


def render(check: PolicyCheck) -> str:
    """What differs, as replay shows a difference: a line a field, a diff for objects;
    then the policy's outcome in a line (empty for a pass)."""
    if check.passed:
        return ""
    if not check.compared:
        return "  not compared: " + "; ".join(check.comparison.unknown)
    lines: list[str] = []
    for difference in check.comparison.differences:
        if difference.is_object:
            lines.append(f"  {difference.field}:")
            lines.extend(
                "    " + line
                for line in difflib.unified_diff(
                    _pretty(difference.expected),
                    _pretty(difference.actual),
                    fromfile="webhook",
                    tofile="policy",
                    lineterm="",
                )
            )
        else:
            lines.append(
                f"  {difference.field}: webhook {_short(difference.expected)}, "
                f"policy {_short(difference.actual)}"
            )
    if check.decision is not None:
        lines.append(f"  policy: {check.decision.summary}")
    return "\n".join(lines)


def _pretty(value: Any) -> list[str]:
    return json.dumps(value, indent=2, sort_keys=True).splitlines()


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 200 else text[:197] + "..."
