"""ConversionReview, the way kube-apiserver reads it: parse, answer, check, compare. Pure.

kube-apiserver sends a ConversionReview when a CustomResourceDefinition's
``spec.conversion.strategy`` is ``Webhook`` and an object must be read or written in a
version other than the one it has: ``request.objects`` (each in its stored or sent
version), ``request.desiredAPIVersion``, ``request.uid``. What it accepts back
(apiextensions-apiserver's webhook converter): the answer's apiVersion and kind those of
the question; ``response.uid`` echoed; ``response.result.status`` ``Success`` (anything
else fails the read or write with ``result.message``); exactly one converted object per
request object, in order, each with the desired apiVersion and the same kind, name,
namespace and uid; labels and annotations string maps. The apiserver then puts back the
original metadata, keeping only the converted labels and annotations — so an object's
meaning here is the object *as the apiserver keeps it*.

Both ``apiextensions.k8s.io/v1`` and ``v1beta1`` are understood.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from webhook_dev.errors import ReviewError
from webhook_dev.reviews import json_body
from webhook_dev.reviews.comparison import Comparison, compare_fields
from webhook_dev.reviews.flags import Flag
from webhook_dev.reviews.json_body import JsonObject, metadata_of, wrong_type

GROUP = "apiextensions.k8s.io"
VERSIONS = (f"{GROUP}/v1", f"{GROUP}/v1beta1")
KIND = "ConversionReview"
SUCCESS = "Success"
# What the console, the index and ``--where`` call a conversion (admission calls have
# CREATE, UPDATE, ...): the apiserver has no verb for it.
OPERATION = "CONVERT"


@dataclass(frozen=True)
class ConversionRequest:
    """One conversion call: ``objects`` to be converted to ``desired_api_version``."""

    review_kind: ClassVar[str] = "conversion"

    api_version: str
    uid: str
    desired_api_version: str
    objects: tuple[JsonObject, ...]
    review: JsonObject

    @property
    def kind(self) -> str:
        """The objects' kind (one CRD's: the apiserver converts one kind per call)."""
        return str(self.objects[0].get("kind") or "") if self.objects else ""

    @property
    def display_name(self) -> str:
        return display_name(self.review["request"])


@dataclass(frozen=True)
class ConversionResponse:
    """The meaning of an answer: what replay compares.

    ``converted`` holds the objects as the apiserver would keep them (metadata restored
    from the originals but for labels and annotations); ``None`` when the conversion
    failed or the answer cannot be used.
    """

    succeeded: bool | None
    status_code: int | None
    status_reason: str
    status_message: str
    converted: tuple[JsonObject, ...] | None

    @property
    def patch_op_count(self) -> int | None:
        return None  # a conversion answers with objects, not a patch


# --- requests -------------------------------------------------------------------------


def parse_request(body: bytes | str | Mapping[str, Any]) -> ConversionRequest:
    """Read a ConversionReview request as the webhook would receive it.

    Raises :class:`ReviewError` with a message fit for an HTTP 400 when the body is not
    JSON, not a ConversionReview of a version we know, or a field has the wrong type.
    """
    review = json_body.load_review(body, {KIND: VERSIONS})
    request = from_review(review)
    json_body.check_values(review, body)
    return request


def from_review(review: JsonObject) -> ConversionRequest:
    """The request of ``review``, whose kind, apiVersion and uid are known to be right."""
    request = review["request"]
    desired = request.get("desiredAPIVersion")
    if not isinstance(desired, str) or not desired:
        raise ReviewError(
            "ConversionReview request has no desiredAPIVersion (the version to convert to)"
            if desired is None
            else wrong_type("request.desiredAPIVersion", desired, "a non-empty string")
        )
    objects = request.get("objects")
    if objects is None:
        objects = []
    if not isinstance(objects, list):
        raise ReviewError(wrong_type("request.objects", objects, "a list of objects"))
    for index, obj in enumerate(objects):
        where = f"request.objects[{index}]"
        if not isinstance(obj, dict):
            raise ReviewError(wrong_type(where, obj, "an object"))
        for name in ("apiVersion", "kind"):
            if not isinstance(obj.get(name), str):
                raise ReviewError(wrong_type(f"{where}.{name}", obj.get(name), "a string"))
        json_body.check_metadata(obj.get("metadata"), f"{where}.metadata")
    return ConversionRequest(
        api_version=review["apiVersion"],
        uid=request["uid"],
        desired_api_version=desired,
        objects=tuple(objects),
        review=review,
    )


def display_name(request: Mapping[str, Any]) -> str:
    """``namespace/name`` of the first object, ``(+N)`` for the others: how the console,
    inspector and replay name a conversion (a list read converts many at once)."""
    objects = request.get("objects")
    objects = objects if isinstance(objects, list) else []
    if not objects:
        return "?"
    metadata = metadata_of(objects[0])
    namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "?")
    first = f"{namespace}/{name}" if namespace else name
    return f"{first} (+{len(objects) - 1})" if len(objects) > 1 else first


def kind_of(request: Mapping[str, Any]) -> str:
    """The kind of the objects converted, ``""`` when there is none to read."""
    objects = request.get("objects")
    if isinstance(objects, list) and objects and isinstance(objects[0], dict):
        return str(objects[0].get("kind") or "")
    return ""


def namespace_of(request: Mapping[str, Any]) -> str:
    objects = request.get("objects")
    if isinstance(objects, list) and objects:
        return str(metadata_of(objects[0]).get("namespace") or "")
    return ""


def desired_version(request: Mapping[str, Any]) -> str:
    return str(request.get("desiredAPIVersion") or "")


def with_objects(
    request: ConversionRequest, objects: list[JsonObject], *, desired: str, uid: str
) -> JsonObject:
    """A copy of ``request``'s review asking to convert ``objects`` to ``desired``
    (replay's round trip: the converted objects sent back to their own version)."""
    review = dict(request.review)
    review["request"] = {
        **request.review["request"],
        "uid": uid,
        "desiredAPIVersion": desired,
        "objects": objects,
    }
    return review


# --- responses ------------------------------------------------------------------------


def build_response(
    request: ConversionRequest,
    converted: list[JsonObject] | None = None,
    *,
    message: str | None = None,
) -> JsonObject:
    """An answer to ``request`` in its own version: ``converted`` objects with status
    ``Success``, or (``converted=None``) a ``Failure`` with ``message``."""
    response: JsonObject = {"uid": request.uid}
    if converted is not None:
        response["convertedObjects"] = converted
        response["result"] = {"status": SUCCESS}
    else:
        response["convertedObjects"] = []
        response["result"] = {"status": "Failure", "message": message or "conversion failed"}
    return {"apiVersion": request.api_version, "kind": KIND, "response": response}


def read_response(
    request: ConversionRequest, body: bytes | str | Mapping[str, Any]
) -> tuple[ConversionResponse | None, list[Flag]]:
    """Check an answer as kube-apiserver would, and say what it means.

    Returns the meaning (``None`` when the body is not a ConversionReview at all) and
    the flags: each a reason the apiserver would fail the conversion although the
    webhook meant it to succeed. A ``Failure`` result is not a flag: it is the answer
    (the apiserver fails the read with its message), as a denial is for admission.
    """
    response, flags = json_body.read_answer(
        body, kind=KIND, api_version=request.api_version, uid=request.uid
    )
    if response is None:
        return None, flags
    given_result = response.get("result")
    result: JsonObject = given_result if isinstance(given_result, dict) else {}
    status = result.get("status")
    if status is None:
        flags.append(
            Flag(
                "result-missing",
                "response.result.status is missing: the apiserver fails the conversion "
                "(it wants Success)",
            )
        )
    succeeded = status == SUCCESS if isinstance(status, str) else None
    converted: tuple[JsonObject, ...] | None = None
    if succeeded:
        converted, object_flags = _read_converted(request, response.get("convertedObjects"))
        flags.extend(object_flags)
    code = result.get("code")
    meaning = ConversionResponse(
        succeeded=succeeded,
        status_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        status_reason=str(result.get("reason") or ""),
        status_message=str(result.get("message") or ""),
        converted=converted,
    )
    return meaning, flags


def _read_converted(
    request: ConversionRequest, converted: Any
) -> tuple[tuple[JsonObject, ...] | None, list[Flag]]:
    """Each converted object checked against its original, and as the apiserver keeps it."""
    if not isinstance(converted, list):
        return None, [
            Flag("converted-missing", "response.convertedObjects must be a list of objects")
        ]
    if len(converted) != len(request.objects):
        return None, [
            Flag(
                "converted-count",
                f"{len(converted)} converted objects for {len(request.objects)} sent: "
                "the apiserver wants exactly one per object, in order",
            )
        ]
    kept: list[JsonObject] = []
    flags: list[Flag] = []
    for index, (original, after) in enumerate(zip(request.objects, converted, strict=True)):
        problem = _object_problem(request.desired_api_version, original, after)
        if problem is not None:
            flags.append(Flag(problem[0], f"convertedObjects[{index}]: {problem[1]}"))
            continue
        kept.append(restore_metadata(original, after))
    return (tuple(kept) if not flags else None), flags


def _object_problem(desired: str, original: JsonObject, after: Any) -> tuple[str, str] | None:
    """Why the apiserver would refuse ``after`` as the conversion of ``original``."""
    if not isinstance(after, dict):
        return "converted-not-object", f"is {json_body.json_type(after)}, not an object"
    if after.get("apiVersion") != desired:
        return (
            "converted-api-version",
            f"apiVersion is {after.get('apiVersion')!r}, the desired one is {desired!r}",
        )
    if after.get("kind") != original.get("kind"):
        return "converted-kind", f"kind is {after.get('kind')!r}, not {original.get('kind')!r}"
    if "metadata" in original and not isinstance(after.get("metadata"), dict):
        return "converted-metadata", "metadata is missing or not an object"
    before_meta, after_meta = metadata_of(original), metadata_of(after)
    for name in ("name", "namespace", "uid"):
        if (before_meta.get(name) or "") != (after_meta.get(name) or ""):
            return (
                "converted-metadata",
                f"metadata.{name} changed from {before_meta.get(name)!r} to "
                f"{after_meta.get(name)!r} (only labels and annotations may change)",
            )
    for name in ("labels", "annotations"):
        values = after_meta.get(name)
        if values is not None and not (
            isinstance(values, dict) and all(isinstance(v, str) for v in values.values())
        ):
            return "converted-metadata", f"metadata.{name} must be a map of strings"
    return None


def restore_metadata(original: JsonObject, converted: JsonObject) -> JsonObject:
    """``converted`` as the apiserver keeps it: the original's metadata, with the
    converted labels and annotations (a webhook's other metadata edits are dropped)."""
    if "metadata" not in original and "metadata" not in converted:
        return converted
    metadata = dict(metadata_of(original))
    converted_meta = metadata_of(converted)
    for name in ("labels", "annotations"):
        if converted_meta.get(name) is None:
            metadata.pop(name, None)
        else:
            metadata[name] = converted_meta[name]
    return {**converted, "metadata": metadata}


# --- comparison -----------------------------------------------------------------------


def compare(expected: ConversionResponse, actual: ConversionResponse) -> Comparison:
    """What differs in meaning: the result, and each object as the apiserver keeps it."""
    pairs: list[tuple[str, Any, Any]] = [
        ("result.status", _status(expected), _status(actual)),
        ("result.code", expected.status_code, actual.status_code),
        ("result.message", expected.status_message, actual.status_message),
    ]
    before, after = expected.converted, actual.converted
    if before is not None and after is not None and len(before) == len(after):
        pairs.extend(
            (f"convertedObjects[{index}]", want, got)
            for index, (want, got) in enumerate(zip(before, after, strict=True))
        )
    else:
        pairs.append(("convertedObjects", _count(before), _count(after)))
    return compare_fields(pairs)


def _status(meaning: ConversionResponse) -> str:
    return {True: SUCCESS, False: "Failure", None: "(none)"}[meaning.succeeded]


def _count(objects: tuple[JsonObject, ...] | None) -> str:
    return "none usable" if objects is None else f"{len(objects)} objects"


def result_of(response: Mapping[str, Any]) -> str | None:
    """``converted`` or ``failed`` as the list shows it; ``None``: no readable result."""
    result = response.get("result")
    status = result.get("status") if isinstance(result, dict) else None
    if not isinstance(status, str):
        return None
    return "converted" if status == SUCCESS else "failed"


def message_of(response: Mapping[str, Any]) -> str:
    result = response.get("result")
    return str(result.get("message") or "") if isinstance(result, dict) else ""
