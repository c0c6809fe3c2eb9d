"""The review kinds the apiserver sends to webhooks, and the door that tells them apart.

kube-apiserver calls a webhook for admission (``AdmissionReview``) and for CRD version
conversion (``ConversionReview``); an operator serves both from one Service. Everything
above the pure core — the proxy, the recorder, the console, the inspector, replay —
handles "a review" and asks its :class:`ReviewKind` for the specifics: how to read the
request, check and mean the answer, compare two answers, and name the call in a list.
A third kind would be one more module and one more entry in :data:`KINDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from webhook_dev.reviews import admission, conversion, json_body
from webhook_dev.reviews.admission import AdmissionRequest, AdmissionResponse
from webhook_dev.reviews.comparison import Comparison
from webhook_dev.reviews.conversion import ConversionRequest, ConversionResponse
from webhook_dev.reviews.flags import Flag
from webhook_dev.reviews.json_body import JsonObject

Request = AdmissionRequest | ConversionRequest
Meaning = AdmissionResponse | ConversionResponse
Body = bytes | str | Mapping[str, Any]


@dataclass(frozen=True)
class Subject:
    """What a call is about, as a list row and a console line name it."""

    kind: str  # the object's kind: Pod, Website
    namespace: str
    name: str  # display name: ns/name, generateName*, first (+N)
    operation: str  # CREATE, UPDATE, ..., CONVERT
    target: str = ""  # where a conversion goes: the desired apiVersion


@dataclass(frozen=True)
class ReviewKind:
    """One kind of review and the functions that know it.

    ``name`` is what the index, ``--where review:...`` and the page call it;
    ``review`` is the ``kind`` field of the document.
    """

    name: str
    review: str
    versions: tuple[str, ...]
    from_review: Callable[[JsonObject], Request]
    read_response: Callable[[Any, Body], tuple[Meaning | None, list[Flag]]]
    compare: Callable[[Any, Any], Comparison]
    subject: Callable[[Mapping[str, Any]], Subject]
    result: Callable[[Mapping[str, Any]], str | None]
    message: Callable[[Mapping[str, Any]], str]


def _admission_subject(request: Mapping[str, Any]) -> Subject:
    return Subject(
        kind=admission.kind_of(request),
        namespace=str(request.get("namespace") or ""),
        name=admission.display_name(request),
        operation=str(request.get("operation") or ""),
    )


def _admission_result(response: Mapping[str, Any]) -> str | None:
    allowed = response.get("allowed")
    if not isinstance(allowed, bool):
        return None
    return "allowed" if allowed else "denied"


def _admission_message(response: Mapping[str, Any]) -> str:
    status = response.get("status")
    return str(status.get("message") or "") if isinstance(status, dict) else ""


def _conversion_subject(request: Mapping[str, Any]) -> Subject:
    return Subject(
        kind=conversion.kind_of(request),
        namespace=conversion.namespace_of(request),
        name=conversion.display_name(request),
        operation=conversion.OPERATION,
        target=conversion.desired_version(request),
    )


ADMISSION = ReviewKind(
    name="admission",
    review=admission.KIND,
    versions=admission.VERSIONS,
    from_review=admission.from_review,
    read_response=admission.read_response,
    compare=admission.compare,
    subject=_admission_subject,
    result=_admission_result,
    message=_admission_message,
)
CONVERSION = ReviewKind(
    name="conversion",
    review=conversion.KIND,
    versions=conversion.VERSIONS,
    from_review=conversion.from_review,
    read_response=conversion.read_response,
    compare=conversion.compare,
    subject=_conversion_subject,
    result=conversion.result_of,
    message=conversion.message_of,
)
KINDS = (ADMISSION, CONVERSION)
_BY_REVIEW = {kind.review: kind for kind in KINDS}
_BY_NAME = {kind.name: kind for kind in KINDS}
NAMES = tuple(_BY_NAME)


def parse_request(body: Body) -> Request:
    """The door: read any review the apiserver sends, checked as its kind wants.

    Raises :class:`~webhook_dev.errors.ReviewError` with a message fit for an HTTP 400
    (not JSON, not a review of a kind and version we know, a wrongly typed field).
    """
    review = json_body.load_review(body, {kind.review: kind.versions for kind in KINDS})
    request = _BY_REVIEW[review["kind"]].from_review(review)
    json_body.check_values(review, body)
    return request


def of_review(review: Mapping[str, Any] | None) -> ReviewKind | None:
    """The kind of a review document (a recorded request or answer), if it is one."""
    if not review:
        return None
    return _BY_REVIEW.get(str(review.get("kind") or ""))


def of_request(request: Request) -> ReviewKind:
    return _BY_NAME[request.review_kind]


def read_response(request: Request, body: Body) -> tuple[Meaning | None, list[Flag]]:
    """Check an answer as the apiserver would for ``request``'s kind."""
    return of_request(request).read_response(request, body)
