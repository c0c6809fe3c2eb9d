from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
import pytest

from tests.reviews import pod, request_review
from webhook_dev.errors import ReviewError
from webhook_dev.reviews import admission as review


def encode(patch: object) -> str:
    return base64.b64encode(json.dumps(patch).encode()).decode()


def answer(request: review.AdmissionRequest, **response: object) -> dict[str, object]:
    return {
        "apiVersion": request.api_version,
        "kind": "AdmissionReview",
        "response": {"uid": request.uid, **response},
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "got an array"),
        (json.dumps({"apiVersion": "v1", "kind": "Pod"}).encode(), "not an AdmissionReview"),
        (
            json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
            "no request",
        ),
        (json.dumps({**request_review(), "request": {"uid": ""}}).encode(), "no uid"),
    ],
)
def test_parse_request_refuses_bad_input_with_a_message_naming_the_problem(
    body: bytes, message: str
) -> None:
    with pytest.raises(ReviewError, match=message):
        review.parse_request(body)


def test_parse_request_reads_v1beta1_and_names_objects_by_generate_name() -> None:
    obj = pod(name="")
    obj["metadata"]["generateName"] = "web-"
    request = review.parse_request(
        json.dumps(request_review(obj, version="admission.k8s.io/v1beta1"))
    )
    assert request.api_version == "admission.k8s.io/v1beta1"
    assert request.display_name == "default/web-*"


def test_build_response_answers_in_the_request_version_with_base64_json_patch() -> None:
    request = review.parse_request(request_review(version="admission.k8s.io/v1beta1"))
    patch = [{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]
    built = review.build_response(request, allowed=True, patch=patch, warnings=["careful"])
    meaning, flags = review.read_response(request, built)
    assert flags == []
    assert built["apiVersion"] == "admission.k8s.io/v1beta1"
    assert meaning is not None and meaning.patched is not None
    assert meaning.patched["metadata"]["labels"] == {"a": "b"}
    assert meaning.warnings == ("careful",)


@pytest.mark.parametrize(
    ("response_review", "code"),
    [
        (
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": "other", "allowed": True},
            },
            "uid-mismatch",
        ),
        (
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": "3f1c-uid"},
            },
            "allowed-missing",
        ),
        (
            {
                "apiVersion": "admission.k8s.io/v1beta1",
                "kind": "AdmissionReview",
                "response": {"uid": "3f1c-uid", "allowed": True},
            },
            "version-mismatch",
        ),
        (
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {
                    "uid": "3f1c-uid",
                    "allowed": True,
                    "patchType": "JSONPatch",
                    "patch": "%%%",
                },
            },
            "patch-not-base64-json",
        ),
        (
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {
                    "uid": "3f1c-uid",
                    "allowed": True,
                    "patchType": "JSONPatch",
                    "patch": encode({"op": "add"}),
                },
            },
            "patch-not-json-patch",
        ),
        (
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {
                    "uid": "3f1c-uid",
                    "allowed": True,
                    "patchType": "JSONPatch",
                    "patch": encode(
                        [{"op": "add", "path": "/metadata/annotations/a", "value": "b"}]
                    ),
                },
            },
            "patch-does-not-apply",
        ),
        (
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": "3f1c-uid", "allowed": True, "patch": encode([])},
            },
            "patch-type",
        ),
        ("not json", "response-not-json"),
    ],
)
def test_read_response_flags_what_the_apiserver_would_reject(
    response_review: object, code: str
) -> None:
    request = review.parse_request(request_review())
    _, flags = review.read_response(request, response_review)  # type: ignore[arg-type]
    assert code in [flag.code for flag in flags]


def test_a_valid_answer_has_no_flags() -> None:
    request = review.parse_request(request_review())
    _, flags = review.read_response(request, answer(request, allowed=True))
    assert flags == []


def test_compare_ignores_patch_text_and_op_order_but_not_the_result() -> None:
    request = review.parse_request(request_review())
    one = [
        {"op": "add", "path": "/metadata/labels", "value": {"a": "1"}},
        {"op": "add", "path": "/metadata/annotations", "value": {"b": "2"}},
    ]
    other = list(reversed(one))
    first, _ = review.read_response(
        request, answer(request, allowed=True, patchType="JSONPatch", patch=encode(one))
    )
    second, _ = review.read_response(
        request, answer(request, allowed=True, patchType="JSONPatch", patch=encode(other))
    )
    assert first is not None and second is not None
    assert review.compare(first, second).matches
    changed = [{"op": "add", "path": "/metadata/labels", "value": {"a": "2"}}]
    third, _ = review.read_response(
        request, answer(request, allowed=True, patchType="JSONPatch", patch=encode(changed))
    )
    assert third is not None
    assert [d.field for d in review.compare(first, third).differences] == ["object"]


def test_compare_reports_allowed_status_and_warnings() -> None:
    request = review.parse_request(request_review())
    allowed, _ = review.read_response(request, answer(request, allowed=True))
    denied, _ = review.read_response(
        request,
        answer(request, allowed=False, status={"code": 403, "message": "no"}, warnings=["w"]),
    )
    assert allowed is not None and denied is not None
    fields = [d.field for d in review.compare(allowed, denied).differences]
    assert fields == ["allowed", "status.code", "status.message", "warnings"]


def test_apply_patch_leaves_the_original_alone() -> None:
    original = pod()
    patched = review.apply_patch(original, [{"op": "remove", "path": "/spec"}])
    assert "spec" in original and "spec" not in patched


_TRICKY_PATCHES = [
    [{"op": "add", "path": "/spec/containers/-", "value": {"name": "sidecar"}}],
    [{"op": "add", "path": "/metadata/labels/a~1b", "value": "x"}],
    [
        {"op": "move", "from": "/spec/containers", "path": "/spec/moved"},
        {"op": "add", "path": "/spec/moved/0/env/-", "value": {"name": "E"}},
    ],
    [
        {"op": "copy", "from": "/spec/containers/0", "path": "/spec/containers/-"},
        {"op": "replace", "path": "/spec/containers/1/name", "value": "copy"},
    ],
    [{"op": "remove", "path": "/spec/containers/0/env/0"}],
    [
        {"op": "add", "path": "/metadata/annotations", "value": {}},
        {"op": "add", "path": "/metadata/annotations/k", "value": "v"},
    ],
    [
        {"op": "test", "path": "/metadata/name", "value": "web"},
        {"op": "replace", "path": "/metadata", "value": {"name": "other"}},
    ],
    [{"op": "replace", "path": "", "value": {"kind": "Pod"}}],
]


@pytest.mark.parametrize("patch", _TRICKY_PATCHES)
def test_apply_patch_is_jsonpatch_and_leaves_the_object_alone(patch: list[Any]) -> None:
    """Copy on write gives jsonpatch's result and never changes what the request holds."""
    obj = {
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "env": [{"name": "A"}, {"name": "B"}]}]},
    }
    before = copy.deepcopy(obj)
    expected = jsonpatch.apply_patch(copy.deepcopy(obj), patch)
    assert review.apply_patch(obj, patch) == expected
    assert obj == before


def test_a_patch_failing_halfway_leaves_the_object_alone() -> None:
    obj = {"metadata": {"labels": {"app": "web"}}, "spec": {}}
    patch = [
        {"op": "add", "path": "/metadata/labels/x", "value": "1"},
        {"op": "remove", "path": "/spec/missing"},
    ]
    with pytest.raises(ReviewError, match="does not apply"):
        review.apply_patch(obj, patch)
    assert obj == {"metadata": {"labels": {"app": "web"}}, "spec": {}}
