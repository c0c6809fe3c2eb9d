"""ConversionReview: read at the door, and answers checked as the apiserver's webhook
converter checks them (apiextensions-apiserver)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sample_webhook.website import convert
from tests.reviews import conversion_review, request_review, website
from webhook_dev.errors import ReviewError
from webhook_dev.reviews import conversion, kinds
from webhook_dev.reviews.admission import AdmissionRequest
from webhook_dev.reviews.conversion import ConversionRequest


def answer(request: ConversionRequest, converted: list[Any], **result: Any) -> dict[str, Any]:
    return {
        "apiVersion": request.api_version,
        "kind": "ConversionReview",
        "response": {
            "uid": request.uid,
            "convertedObjects": converted,
            "result": result or {"status": "Success"},
        },
    }


def converted_by_sample(request: ConversionRequest) -> list[Any]:
    return [convert(copy.deepcopy(obj), request.desired_api_version) for obj in request.objects]


def test_the_door_tells_a_conversion_from_an_admission_review() -> None:
    assert isinstance(kinds.parse_request(conversion_review()), ConversionRequest)
    assert isinstance(kinds.parse_request(request_review()), AdmissionRequest)


def test_a_conversion_request_names_its_objects_and_the_version_wanted() -> None:
    request = conversion.parse_request(conversion_review(website("a"), website("b")))
    assert request.desired_api_version == "samples.webhook-dev.io/v2"
    assert request.kind == "Website"
    assert request.display_name == "websites/a (+1)"
    subject = kinds.CONVERSION.subject(request.review["request"])
    assert (subject.operation, subject.target) == ("CONVERT", "samples.webhook-dev.io/v2")


def test_v1beta1_conversion_reviews_are_read_too() -> None:
    request = kinds.parse_request(conversion_review(version="apiextensions.k8s.io/v1beta1"))
    assert request.api_version == "apiextensions.k8s.io/v1beta1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["request"].pop("desiredAPIVersion"), "no desiredAPIVersion"),
        (lambda r: r["request"].update(desiredAPIVersion=3), "request.desiredAPIVersion must"),
        (lambda r: r["request"].update(objects={"a": 1}), "request.objects must be a list"),
        (lambda r: r["request"]["objects"].append("x"), "request.objects[1] must be an object"),
        (
            lambda r: r["request"]["objects"][0]["metadata"].update(labels={"a": 1}),
            "request.objects[0].metadata.labels must be a map of strings",
        ),
        (lambda r: r["request"].pop("uid"), "ConversionReview request has no uid"),
        (lambda r: r.update(apiVersion="apiextensions.k8s.io/v2"), "not an AdmissionReview or"),
    ],
)
def test_a_malformed_conversion_review_is_refused_naming_the_field(
    change: Any, message: str
) -> None:
    review = conversion_review()
    change(review)
    with pytest.raises(ReviewError, match=message.replace("[", r"\[").replace("(", r"\(")):
        kinds.parse_request(review)


def test_a_good_answer_has_no_flags_and_means_the_objects_as_the_apiserver_keeps_them() -> None:
    request = conversion.parse_request(conversion_review(website("a"), website("b")))
    converted = converted_by_sample(request)
    converted[0]["metadata"]["resourceVersion"] = "999"  # the apiserver puts back its own
    meaning, flags = conversion.read_response(request, answer(request, converted))
    assert flags == []
    assert meaning is not None and meaning.succeeded
    assert meaning.converted is not None
    assert [o["spec"] for o in meaning.converted] == [{"address": "example.com:8080"}] * 2
    assert meaning.converted[0]["metadata"]["resourceVersion"] == "41"


def test_label_and_annotation_changes_are_kept() -> None:
    request = conversion.parse_request(conversion_review())
    converted = converted_by_sample(request)
    converted[0]["metadata"]["labels"] = {"team": "web", "converted": "yes"}
    meaning, flags = conversion.read_response(request, answer(request, converted))
    assert flags == [] and meaning is not None and meaning.converted is not None
    assert meaning.converted[0]["metadata"]["labels"]["converted"] == "yes"


@pytest.mark.parametrize(
    ("spoil", "code", "message"),
    [
        (
            lambda o: o.update(apiVersion="samples.webhook-dev.io/v1"),
            "converted-api-version",
            "the desired one is 'samples.webhook-dev.io/v2'",
        ),
        (lambda o: o.update(kind="Site"), "converted-kind", "kind is 'Site', not 'Website'"),
        (
            lambda o: o["metadata"].update(name="other"),
            "converted-metadata",
            "metadata.name changed",
        ),
        (lambda o: o["metadata"].update(uid="x"), "converted-metadata", "metadata.uid changed"),
        (
            lambda o: o["metadata"].update(namespace="x"),
            "converted-metadata",
            "metadata.namespace changed",
        ),
        (
            lambda o: o["metadata"].update(labels={"a": 1}),
            "converted-metadata",
            "metadata.labels must be a map of strings",
        ),
        (lambda o: o.pop("metadata"), "converted-metadata", "metadata is missing"),
    ],
)
def test_each_converted_object_is_checked_against_its_original(
    spoil: Any, code: str, message: str
) -> None:
    request = conversion.parse_request(conversion_review())
    converted = converted_by_sample(request)
    spoil(converted[0])
    meaning, flags = conversion.read_response(request, answer(request, converted))
    assert [flag.code for flag in flags] == [code]
    assert message in flags[0].message and flags[0].message.startswith("convertedObjects[0]")
    assert meaning is not None and meaning.converted is None


def test_one_object_too_few_is_flagged_as_the_apiserver_refuses_it() -> None:
    request = conversion.parse_request(conversion_review(website("a"), website("b")))
    converted = converted_by_sample(request)[:1]
    _, flags = conversion.read_response(request, answer(request, converted))
    assert [flag.code for flag in flags] == ["converted-count"]
    assert "1 converted objects for 2 sent" in flags[0].message


def test_uid_kind_and_version_of_the_answer_are_checked() -> None:
    request = conversion.parse_request(conversion_review())
    body = answer(request, converted_by_sample(request))
    body["response"]["uid"] = "other"
    body["apiVersion"] = "apiextensions.k8s.io/v1beta1"
    body["kind"] = "AdmissionReview"
    _, flags = conversion.read_response(request, body)
    assert sorted(flag.code for flag in flags) == [
        "kind-mismatch",
        "uid-mismatch",
        "version-mismatch",
    ]


def test_a_failure_is_an_answer_not_a_flag_and_a_missing_status_is_a_flag() -> None:
    request = conversion.parse_request(conversion_review())
    meaning, flags = conversion.read_response(
        request, answer(request, [], status="Failure", message="spec.address is not host:port")
    )
    assert flags == []
    assert meaning is not None and meaning.succeeded is False
    assert meaning.status_message == "spec.address is not host:port"
    body = answer(request, converted_by_sample(request))
    del body["response"]["result"]
    _, flags = conversion.read_response(request, body)
    assert [flag.code for flag in flags] == ["result-missing"]


def test_answers_compare_by_meaning_object_by_object() -> None:
    request = conversion.parse_request(conversion_review(website("a"), website("b")))
    converted = converted_by_sample(request)
    expected, _ = conversion.read_response(request, answer(request, converted))
    reordered = copy.deepcopy(converted)
    reordered[1]["metadata"]["resourceVersion"] = "7"  # restored by the apiserver: no matter
    same, _ = conversion.read_response(request, answer(request, reordered))
    assert expected is not None and same is not None
    assert conversion.compare(expected, same).matches
    changed = copy.deepcopy(converted)
    changed[1]["spec"]["address"] = "example.com:9090"
    actual, _ = conversion.read_response(request, answer(request, changed))
    assert actual is not None
    assert conversion.compare(expected, actual).fields == ("convertedObjects[1]",)
    failed, _ = conversion.read_response(
        request, answer(request, [], status="Failure", message="no")
    )
    assert failed is not None
    assert conversion.compare(expected, failed).fields == (
        "result.status",
        "result.message",
        "convertedObjects",
    )


def test_the_sample_round_trips_v2_fields_through_the_stored_v1() -> None:
    v2 = website("a", "v2", address="example.com:8443", tls=True)
    stored = convert(copy.deepcopy(v2), "samples.webhook-dev.io/v1")
    assert stored["spec"] == {"host": "example.com", "port": 8443}
    assert convert(stored, "samples.webhook-dev.io/v2") == v2
