"""The shared comparison model: ``--ignore`` pointers and Diffy-style noise."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.reviews import request_review
from webhook_dev.reviews import admission, conversion
from webhook_dev.reviews.comparison import (
    Ignore,
    field_pointer,
    noisy_pointers,
    separate_noise,
)


def meaning(**response: Any) -> admission.AdmissionResponse:
    request = admission.parse_request(request_review())
    if "labels" in response:
        patch = [{"op": "add", "path": "/metadata/labels", "value": response.pop("labels")}]
        response |= {
            "patchType": "JSONPatch",
            "patch": base64.b64encode(json.dumps(patch).encode()),
        }
        response["patch"] = response["patch"].decode()
    answer = {
        "apiVersion": request.api_version,
        "kind": "AdmissionReview",
        "response": {"uid": request.uid, "allowed": True, **response},
    }
    result, flags = admission.read_response(request, answer)
    assert result is not None and not flags, flags
    return result


@pytest.mark.parametrize(
    ("name", "pointer"),
    [
        ("allowed", "/allowed"),
        ("status.message", "/status/message"),
        ("convertedObjects[2]", "/convertedObjects/2"),
        ("auditAnnotations", "/auditAnnotations"),
    ],
)
def test_a_field_name_reads_as_its_pointer_in_the_meaning_document(name: str, pointer: str) -> None:
    assert field_pointer(name) == pointer


def test_ignore_refuses_what_is_not_a_pointer_to_a_field() -> None:
    for text in ("allowed", "/", "/a~2b"):
        with pytest.raises(ValueError, match="--ignore"):
            Ignore.parse([text])
    assert Ignore.parse(["/warnings", "/warnings"]).pointers == ("/warnings",)


def test_ignoring_a_whole_field_mutes_its_difference() -> None:
    control = meaning(warnings=["old"])
    candidate = meaning(warnings=["new"], status={"message": "hi"})
    assert admission.compare(control, candidate).fields == ("status.message", "warnings")
    muted = admission.compare(control, candidate, Ignore.parse(["/warnings"]))
    assert muted.fields == ("status.message",)


def test_ignoring_a_part_of_the_object_keeps_the_rest_compared() -> None:
    control = meaning(labels={"stamp": "1", "team": "a"})
    same_but_stamp = meaning(labels={"stamp": "2", "team": "a"})
    other_team = meaning(labels={"stamp": "2", "team": "b"})
    ignore = Ignore.parse(["/object/metadata/labels/stamp"])
    assert admission.compare(control, same_but_stamp, ignore).matches
    difference = admission.compare(control, other_team, ignore).differences
    assert [d.field for d in difference] == ["object"]
    assert difference[0].expected["metadata"]["labels"]["stamp"] == "1"  # shown unmuted


def test_audit_annotations_are_part_of_an_answers_meaning() -> None:
    control = meaning(auditAnnotations={"decision": "ok", "trace": "1"})
    candidate = meaning(auditAnnotations={"decision": "ok", "trace": "2"})
    assert admission.compare(control, candidate).fields == ("auditAnnotations",)
    assert admission.compare(control, candidate, Ignore.parse(["/auditAnnotations/trace"])).matches
    assert admission.meaning_document(control)["auditAnnotations"] == {
        "decision": "ok",
        "trace": "1",
    }


def test_bad_audit_annotations_are_flagged() -> None:
    request = admission.parse_request(request_review())
    answer = {
        "apiVersion": request.api_version,
        "kind": "AdmissionReview",
        "response": {"uid": request.uid, "allowed": True, "auditAnnotations": {"a": 1}},
    }
    _, flags = admission.read_response(request, answer)
    assert [flag.code for flag in flags] == ["bad-audit-annotations"]


def test_a_field_the_control_disagrees_with_itself_on_is_noise() -> None:
    first = meaning(labels={"stamp": "1", "team": "a"}, warnings=["w"])
    second = meaning(labels={"stamp": "2", "team": "a"}, warnings=["w"])
    candidate = meaning(labels={"stamp": "3", "team": "a"}, warnings=["x"])
    twice = admission.compare(first, second)
    assert noisy_pointers(twice).pointers == ("/object/metadata/labels/stamp",)
    result = separate_noise(
        lambda ignore: admission.compare(first, candidate, ignore), Ignore(), twice
    )
    assert result.fields == ("warnings",)
    assert [d.field for d in result.noise] == ["object"]
    assert result.noisy


def test_a_field_that_differs_beyond_its_noise_stays_a_difference() -> None:
    first = meaning(labels={"stamp": "1", "team": "a"})
    second = meaning(labels={"stamp": "2", "team": "a"})
    candidate = meaning(labels={"stamp": "3", "team": "b"})
    result = separate_noise(
        lambda ignore: admission.compare(first, candidate, ignore),
        Ignore(),
        admission.compare(first, second),
    )
    assert result.fields == ("object",) and not result.noise


def test_without_a_second_control_answer_nothing_is_noise() -> None:
    first, candidate = meaning(warnings=["a"]), meaning(warnings=["b"])
    result = separate_noise(lambda i: admission.compare(first, candidate, i), Ignore(), None)
    assert result.fields == ("warnings",) and not result.noise


def test_conversion_ignores_a_part_of_each_converted_object() -> None:
    def converted(stamp: str) -> conversion.ConversionResponse:
        return conversion.ConversionResponse(
            succeeded=True,
            status_code=None,
            status_reason="",
            status_message="",
            converted=({"metadata": {"name": "a"}, "spec": {"stamp": stamp, "x": 1}},),
        )

    first, second = converted("1"), converted("2")
    assert conversion.compare(first, second).fields == ("convertedObjects[0]",)
    assert conversion.compare(
        first, second, Ignore.parse(["/convertedObjects/0/spec/stamp"])
    ).matches
    assert conversion.meaning_document(first)["result"]["status"] == "Success"
