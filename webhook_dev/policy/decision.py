"""What admission policies decided for one request, and how that compares with the
webhook's answer: the webhook is the control, the policy the candidate
(:mod:`webhook_dev.reviews.comparison`). Pure.

The apiserver words a webhook's denial ``admission webhook "NAME" denied the request:
MESSAGE`` and a policy's ``ValidatingAdmissionPolicy 'NAME' with binding 'B' denied
request: MESSAGE``; a policy's ``Warn`` is ``Validation failed for ... : MESSAGE``. Those
frames always differ, so the comparison is of what the author wrote: the decision, the
HTTP code the client gets, MESSAGE, the warnings' messages, and for a mutating webhook the
object after its patch against the object after the policy's mutations (both decoded and
defaulted as the apiserver stores them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from webhook_dev.reviews.admission import AdmissionResponse
from webhook_dev.reviews.comparison import Comparison, compare_fields, not_comparable
from webhook_dev.reviews.json_body import JsonObject

Side = Literal["validating", "mutating"]
SIDES: tuple[Side, ...] = ("validating", "mutating")

# What the apiserver makes of a webhook's denial code (webhook/errors.ToStatusErr):
# anything under 400 becomes 400.
_LOWEST_DENIAL_CODE = 400


@dataclass(frozen=True)
class PolicyDecision:
    """The policies' outcome for one request, as kube-apiserver's plugins gave it.

    ``message`` is the apiserver's whole error text; ``denial`` the policy's own message
    in it. ``warnings`` are the ``Warn`` messages, ``warning_texts`` as the client sees
    them. ``object`` is the object after the mutations (mutating only); ``control_object``
    the webhook's resulting object decoded and defaulted the same way. ``missing`` names
    what a policy read that the recording does not hold; ``error`` is a failure of the
    evaluation itself (not the policy's decision).
    """

    allowed: bool
    code: int = 0
    reason: str = ""
    message: str = ""
    denial: str = ""
    warnings: tuple[str, ...] = ()
    warning_texts: tuple[str, ...] = ()
    audit_annotations: Mapping[str, str] = field(default_factory=dict)
    object: JsonObject | None = None
    control_object: JsonObject | None = None
    # The evaluator found the two objects identical (decoded and defaulted): it may then
    # leave both out. ``False``/``None``: compare ``object`` and ``control_object``.
    same_object: bool | None = None
    matched: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    error: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PolicyDecision:
        return cls(
            allowed=bool(data.get("allowed")),
            code=int(data.get("code") or 0),
            reason=str(data.get("reason") or ""),
            message=str(data.get("message") or ""),
            denial=str(data.get("denial") or ""),
            warnings=tuple(data.get("warnings") or ()),
            warning_texts=tuple(data.get("warningTexts") or ()),
            audit_annotations=dict(data.get("auditAnnotations") or {}),
            object=data.get("object"),
            control_object=data.get("control"),
            same_object=data.get("same"),
            matched=tuple(data.get("matched") or ()),
            missing=tuple(data.get("missing") or ()),
            error=str(data.get("error") or ""),
        )

    def to_json(self) -> JsonObject:
        """The decision as a recording, ``--json`` and the inspector carry it."""
        return {
            "allowed": self.allowed,
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
            "denial": self.denial,
            "warnings": list(self.warnings),
            "warningTexts": list(self.warning_texts),
            "auditAnnotations": dict(self.audit_annotations),
            "object": self.object,
            "matched": list(self.matched),
            "missing": list(self.missing),
            "error": self.error,
        }

    @property
    def summary(self) -> str:
        """One line: ``allowed``, ``denied (422 Invalid): MESSAGE``, ``warned: ...``."""
        if self.error:
            return f"error: {self.error}"
        if self.missing:
            return "unknown: the recording lacks " + ", ".join(self.missing)
        if not self.allowed:
            return f"denied ({self.code} {self.reason}): {self.denial}"
        if self.warnings:
            return "allowed, warned: " + "; ".join(self.warnings)
        return "allowed" + (" (no policy matched)" if not self.matched else "")


def side_of(path: str, response: Mapping[str, Any]) -> Side | None:
    """Which kind of webhook configuration answered an exchange, from what a recording
    holds: its path naming it (``/validate...``, ``/mutate...``), else ``None`` — the
    recording does not say (``replay --webhook`` says it for the whole run)."""
    lowered = path.lower()
    if "mutat" in lowered:
        return "mutating"
    if "validat" in lowered:
        return "validating"
    return None


def control_code(control: AdmissionResponse) -> int | None:
    """The HTTP code the client gets for the webhook's denial; ``None`` when it allowed."""
    if control.allowed is not False:
        return None
    code = control.status_code or 0
    return code if code >= _LOWEST_DENIAL_CODE else _LOWEST_DENIAL_CODE


def control_message(control: AdmissionResponse) -> str:
    """The message of the webhook's denial as the client reads it after the apiserver's
    frame: its message, else its reason (``ToStatusErr``)."""
    return control.status_message or control.status_reason


def compare(control: AdmissionResponse, decision: PolicyDecision, side: Side) -> Comparison:
    """The webhook's answer (control) against the policies' decision (candidate).

    Not comparable when a policy read what the recording lacks. Codes and messages are
    compared when both denied; a validating side compares warnings, a mutating side the
    object each leaves.
    """
    if decision.missing:
        return not_comparable(f"the recording lacks {what}" for what in decision.missing)
    pairs: list[tuple[str, Any, Any]] = [("allowed", control.allowed, decision.allowed)]
    if control.allowed is False and not decision.allowed:
        pairs.append(("status.code", control_code(control), decision.code))
        pairs.append(("status.message", control_message(control), decision.denial))
    if side == "validating":
        pairs.append(("warnings", list(control.warnings), list(decision.warnings)))
    elif control.allowed and decision.allowed and not decision.same_object:
        pairs.append(("object", decision.control_object, decision.object))
    return compare_fields(pairs)


# --- the live outcome, as the recording keeps it and the console, live panel and ---------
# --- inspector show it --------------------------------------------------------------------

AGREES, DIFFERS, NOT_COMPARED = "agrees", "differs", "not compared"


def live_record(
    side: Side | None, comparison: Comparison, decision: PolicyDecision | None
) -> JsonObject:
    """What ``serve``/``up --policy`` keep in an exchange's ``policy`` field: the outcome
    (``agrees``, ``differs``, ``not compared``), what differs (an object only when it
    differs) and the policies' decision without the object (the answer's patch already
    says what the webhook's object became)."""
    outcome = NOT_COMPARED if not comparison.comparable else AGREES
    if comparison.comparable and not comparison.matches:
        outcome = DIFFERS
    decided = None
    if decision is not None:
        decided = decision.to_json()
        decided.pop("object", None)
    return {
        "side": side,
        "outcome": outcome,
        "differences": [
            {"field": d.field, "webhook": d.expected, "policy": d.actual}
            for d in comparison.differences
        ],
        "unknown": list(comparison.unknown),
        "decision": decided,
    }


def outcome_line(record: Mapping[str, Any]) -> str:
    """One line for a recorded outcome: ``policy agrees``; ``policy differs (allowed,
    warnings): denied (403 Forbidden): MESSAGE``; ``policy not compared: ...``."""
    outcome = record.get("outcome")
    if outcome == NOT_COMPARED:
        return "policy not compared: " + "; ".join(map(str, record.get("unknown") or []))
    decided = record.get("decision")
    summary = PolicyDecision.from_json(decided).summary if isinstance(decided, dict) else ""
    if outcome == AGREES:
        return f"policy agrees: {summary}" if summary else "policy agrees"
    fields = ", ".join(str(d.get("field")) for d in record.get("differences") or [])
    return f"policy differs ({fields}): {summary}"
