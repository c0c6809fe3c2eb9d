"""The webhook's answer (control) against the policies' decision (candidate), by meaning."""

from __future__ import annotations

from webhook_dev.policy.decision import PolicyDecision, compare, side_of
from webhook_dev.reviews.admission import AdmissionResponse
from webhook_dev.reviews.comparison import Comparison, not_comparable


def answer(allowed: bool, *, code: int | None = None, message: str = "", warnings=(), patched=None):
    return AdmissionResponse(
        allowed=allowed,
        status_code=code,
        status_reason="",
        status_message=message,
        warnings=tuple(warnings),
        patch=None,
        patched=patched,
    )


def test_a_denial_with_the_same_message_and_code_matches_whatever_the_apiserver_frames():
    decision = PolicyDecision(
        allowed=False,
        code=403,
        reason="Forbidden",
        message="configmaps \"c\" is forbidden: ValidatingAdmissionPolicy 'p' with binding "
        "'b' denied request: needs a team",
        denial="needs a team",
    )
    assert compare(answer(False, code=403, message="needs a team"), decision, "validating").matches


def test_a_webhook_denial_without_a_code_is_400_and_differs_from_a_policy_422():
    decision = PolicyDecision(allowed=False, code=422, reason="Invalid", denial="needs a team")
    comparison = compare(answer(False, message="needs a team"), decision, "validating")
    assert comparison.fields == ("status.code",)
    assert (comparison.differences[0].expected, comparison.differences[0].actual) == (400, 422)


def test_allowed_against_denied_differs_on_the_decision_alone():
    decision = PolicyDecision(allowed=False, code=422, denial="no")
    assert compare(answer(True), decision, "validating").fields == ("allowed",)


def test_warnings_are_compared_by_their_messages():
    decision = PolicyDecision(allowed=True, warnings=("old image",))
    assert compare(answer(True, warnings=["old image"]), decision, "validating").matches
    assert compare(answer(True), decision, "validating").fields == ("warnings",)


def test_a_mutating_side_compares_the_object_each_leaves():
    same = PolicyDecision(allowed=True, object={"a": 1}, control_object={"a": 1})
    other = PolicyDecision(allowed=True, object={"a": 2}, control_object={"a": 1})
    assert compare(answer(True), same, "mutating").matches
    assert compare(answer(True), other, "mutating").fields == ("object",)


def test_a_decision_that_read_what_the_recording_lacks_is_not_compared():
    decision = PolicyDecision(allowed=False, code=422, denial="x", missing=("namespaceObject",))
    comparison = compare(answer(True), decision, "validating")
    assert not comparison.comparable
    assert not comparison.matches
    assert comparison.differences == ()
    assert comparison.unknown == ("the recording lacks namespaceObject",)


def test_not_comparable_is_neither_a_match_nor_a_difference():
    assert Comparison().matches and Comparison().comparable
    unknown = not_comparable(["authorizer"])
    assert not unknown.matches and not unknown.comparable and unknown.fields == ()


def test_the_side_is_read_from_the_path_or_left_unknown():
    assert side_of("/validate-pods?timeout=5s", {}) == "validating"
    assert side_of("/mutate?timeout=10s", {}) == "mutating"
    assert side_of("/", {}) is None


def test_a_decision_reads_back_from_the_evaluators_json():
    decision = PolicyDecision.from_json(
        {"allowed": False, "code": 422, "denial": "x", "warnings": ["w"], "missing": []}
    )
    assert decision == PolicyDecision.from_json(decision.to_json() | {"control": None})
    assert decision.summary == "denied (422 ): x"
