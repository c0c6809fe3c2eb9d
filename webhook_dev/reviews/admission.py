"""AdmissionReview, the way kube-apiserver reads it: parse, answer, check, apply, compare.

Pure: no network, no files. The proxy uses it to refuse bad input and to flag answers the
apiserver would reject; replay uses it to compare two answers by what they *mean*
(allowed, status, warnings, and the object after the patch), not by their bytes.

Both ``admission.k8s.io/v1`` and ``v1beta1`` are understood; the answer must carry the
version of the question (the apiserver rejects any other).
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import jsonpatch

from webhook_dev.errors import ReviewError
from webhook_dev.reviews import fast_json, json_body
from webhook_dev.reviews.comparison import NOTHING_IGNORED, Comparison, Ignore, compare_fields
from webhook_dev.reviews.flags import Flag
from webhook_dev.reviews.json_body import JsonObject, wrong_type

GROUP = "admission.k8s.io"
VERSIONS = (f"{GROUP}/v1", f"{GROUP}/v1beta1")
KIND = "AdmissionReview"


@dataclass(frozen=True)
class AdmissionRequest:
    """The parts of ``request`` that webhook-dev reasons about; ``review`` keeps the rest."""

    review_kind: ClassVar[str] = "admission"

    api_version: str
    uid: str
    kind: str
    group: str
    operation: str
    namespace: str
    name: str
    object: JsonObject | None
    old_object: JsonObject | None
    review: JsonObject

    @property
    def display_name(self) -> str:
        return display_name(self.review["request"])


@dataclass(frozen=True)
class AdmissionResponse:
    """The meaning of an answer: what replay compares. ``patched`` is the object after the patch.

    ``audit_annotations`` are part of it: the apiserver writes them into the audit log
    (prefixed with the entry's name), and an auditor reads them as the webhook's word.
    """

    allowed: bool | None
    status_code: int | None
    status_reason: str
    status_message: str
    warnings: tuple[str, ...]
    patch: list[JsonObject] | None
    patched: JsonObject | None
    audit_annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def patch_op_count(self) -> int | None:
        return None if self.patch is None else len(self.patch)


# --- requests -------------------------------------------------------------------------


def parse_request(body: bytes | str | Mapping[str, Any]) -> AdmissionRequest:
    """Read an AdmissionReview request as the webhook would receive it.

    Raises :class:`ReviewError` with a message fit for an HTTP 400 when the body is not JSON,
    not an AdmissionReview of a version we know, or has no ``request.uid``. (The door,
    which takes any review kind, uses :func:`webhook_dev.reviews.kinds.parse_request`.)
    """
    review = json_body.load_review(body, {KIND: VERSIONS})
    request = from_review(review)
    json_body.check_values(review, body)
    return request


def from_review(review: JsonObject) -> AdmissionRequest:
    """The request of ``review``, whose kind, apiVersion and uid are known to be right:
    each field checked for the type the apiserver sends it as."""
    request = review["request"]
    _check_request_shape(request)
    kind_ref = request.get("kind")
    if not isinstance(kind_ref, dict):
        kind_ref = {}
    obj, old = request.get("object"), request.get("oldObject")
    return AdmissionRequest(
        api_version=review["apiVersion"],
        uid=request["uid"],
        kind=str(kind_ref.get("kind", "")),
        group=str(kind_ref.get("group", "")),
        operation=str(request.get("operation", "")),
        namespace=str(request.get("namespace") or ""),
        name=str(request.get("name") or ""),
        object=obj if isinstance(obj, dict) else None,
        old_object=old if isinstance(old, dict) else None,
        review=review,
    )


# Fields of ``request`` and the JSON type the apiserver sends them as (admission/v1 types.go).
_STRING_FIELDS = ("operation", "namespace", "name", "subResource", "requestSubResource")
_GVK_FIELDS = ("kind", "resource", "requestKind", "requestResource")
_OBJECT_FIELDS = ("object", "oldObject", "options")


def _check_request_shape(request: Mapping[str, Any]) -> None:
    """Refuse wrong-typed fields the way the apiserver's decoder would, naming the field.

    Everything after the door (console, recorder, inspector, the user's handler) may then
    rely on ``request.kind`` being an object, ``userInfo.groups`` a list of strings, ....
    """
    for name in _STRING_FIELDS:
        if request.get(name) is not None and not isinstance(request[name], str):
            raise ReviewError(wrong_type(f"request.{name}", request[name], "a string"))
    for name in _GVK_FIELDS:
        value = request.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ReviewError(wrong_type(f"request.{name}", value, "an object"))
        for part, text in value.items():
            if not isinstance(text, str):
                raise ReviewError(wrong_type(f"request.{name}.{part}", text, "a string"))
    for name in _OBJECT_FIELDS:
        if request.get(name) is not None and not isinstance(request[name], dict):
            raise ReviewError(wrong_type(f"request.{name}", request[name], "an object or null"))
    for name in ("object", "oldObject"):
        if isinstance(request.get(name), dict):
            json_body.check_metadata(request[name].get("metadata"), f"request.{name}.metadata")
    if request.get("dryRun") is not None and not isinstance(request["dryRun"], bool):
        raise ReviewError(wrong_type("request.dryRun", request["dryRun"], "true or false"))
    _check_user_info(request.get("userInfo"))


def _check_user_info(user: Any) -> None:
    if user is None:
        return
    if not isinstance(user, dict):
        raise ReviewError(wrong_type("request.userInfo", user, "an object"))
    for name in ("username", "uid"):
        if user.get(name) is not None and not isinstance(user[name], str):
            raise ReviewError(wrong_type(f"request.userInfo.{name}", user[name], "a string"))
    groups = user.get("groups")
    if groups is not None and not (
        isinstance(groups, list) and all(isinstance(g, str) for g in groups)
    ):
        raise ReviewError(wrong_type("request.userInfo.groups", groups, "a list of strings"))
    extra = user.get("extra")
    if extra is not None and not (
        isinstance(extra, dict)
        and all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in extra.values())
    ):
        raise ReviewError(
            wrong_type("request.userInfo.extra", extra, "an object of lists of strings")
        )


def kind_of(request: Mapping[str, Any]) -> str:
    """``request.kind.kind``, or ``""`` when missing or not an object (e.g. an old or
    hand-written recording): how the console, inspector and replay read a call's kind."""
    kind = request.get("kind")
    return str(kind.get("kind") or "") if isinstance(kind, dict) else ""


def display_name(request: Mapping[str, Any]) -> str:
    """``namespace/name`` of a review's ``request``, ``generateName*`` for an object not yet
    named, ``?`` for no name at all: how the console, inspector and replay name a call."""
    namespace = str(request.get("namespace") or "")
    name = str(request.get("name") or "")
    obj = request.get("object")
    if not name and isinstance(obj, dict):
        metadata = obj.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        name = str(metadata.get("name") or "") or (
            f"{metadata['generateName']}*" if metadata.get("generateName") else ""
        )
    return f"{namespace}/{name or '?'}" if namespace else name or "?"


def with_object(request: AdmissionRequest, obj: JsonObject, *, uid: str) -> JsonObject:
    """A copy of ``request``'s review with ``object`` and ``uid`` replaced (for a second pass)."""
    review = copy.deepcopy(request.review)
    review["request"]["object"] = copy.deepcopy(obj)
    review["request"]["uid"] = uid
    return review


# --- responses ------------------------------------------------------------------------


def build_response(
    request: AdmissionRequest,
    *,
    allowed: bool,
    patch: Sequence[Mapping[str, Any]] | None = None,
    message: str | None = None,
    code: int | None = None,
    reason: str | None = None,
    warnings: Sequence[str] = (),
) -> JsonObject:
    """An answer to ``request`` in its own version, with a base64 JSON Patch when given one."""
    response: JsonObject = {"uid": request.uid, "allowed": allowed}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = encode_patch(patch)
    if message is not None or code is not None or reason is not None:
        status: JsonObject = {}
        if code is not None:
            status["code"] = code
        if reason is not None:
            status["reason"] = reason
        if message is not None:
            status["message"] = message
        response["status"] = status
    if warnings:
        response["warnings"] = list(warnings)
    return {"apiVersion": request.api_version, "kind": KIND, "response": response}


def encode_patch(patch: Sequence[Mapping[str, Any]]) -> str:
    return base64.b64encode(json.dumps(list(patch)).encode()).decode()


def read_response(
    request: AdmissionRequest, body: bytes | str | Mapping[str, Any], *, apply: bool = True
) -> tuple[AdmissionResponse | None, list[Flag]]:
    """Check an answer as kube-apiserver would, and say what it means.

    Returns the meaning (``None`` when the body is not an AdmissionReview at all) and the
    flags: each a reason the apiserver would fail the call, or a patch that cannot apply.
    ``apply=False``: decode the patch but leave ``patched`` empty (``replay --policy``
    has the evaluator apply it, as the apiserver does).
    """
    response, flags = json_body.read_answer(
        body, kind=KIND, api_version=request.api_version, uid=request.uid
    )
    if response is None:
        return None, flags
    allowed = response.get("allowed")
    if not isinstance(allowed, bool):
        flags.append(Flag("allowed-missing", "response.allowed must be true or false"))
        allowed = None
    given_status = response.get("status")
    status: JsonObject = given_status if isinstance(given_status, dict) else {}
    warnings = response.get("warnings") or []
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        flags.append(Flag("bad-warnings", "response.warnings must be a list of strings"))
        warnings = []
    if apply:
        patch, patched, patch_flags = _read_patch(request, response)
    else:
        patch, flag = _decode_patch(response)
        patched, patch_flags = None, [flag] if flag is not None else []
    flags.extend(patch_flags)
    audit = response.get("auditAnnotations") or {}
    if not isinstance(audit, dict) or not all(isinstance(v, str) for v in audit.values()):
        flags.append(
            Flag("bad-audit-annotations", "response.auditAnnotations must map strings to strings")
        )
        audit = {}
    code = status.get("code")
    meaning = AdmissionResponse(
        allowed=allowed,
        status_code=code if isinstance(code, int) else None,
        status_reason=str(status.get("reason") or ""),
        status_message=str(status.get("message") or ""),
        warnings=tuple(warnings),
        patch=patch,
        patched=patched,
        audit_annotations=audit,
    )
    return meaning, flags


def patch_op_count(response: Mapping[str, Any]) -> int | None:
    """How many operations a review's ``response`` patches; ``None``: no readable patch."""
    patch, _ = _decode_patch(response)
    return None if patch is None else len(patch)


def _decode_patch(response: Mapping[str, Any]) -> tuple[list[JsonObject] | None, Flag | None]:
    """``response.patch`` as a JSON Patch: ``(None, None)`` without one, else it or a flag."""
    encoded = response.get("patch")
    if encoded is None:
        return None, None
    if response.get("patchType") != "JSONPatch":
        return None, Flag(
            "patch-type", f"patchType is {response.get('patchType')!r}, not 'JSONPatch'"
        )
    try:
        patch = fast_json.loads(base64.b64decode(str(encoded), validate=True))
    except (binascii.Error, ValueError) as error:
        return None, Flag("patch-not-base64-json", f"patch is not base64 JSON: {error}")
    if not isinstance(patch, list) or not all(
        isinstance(op, dict) and "op" in op and "path" in op for op in patch
    ):
        return None, Flag("patch-not-json-patch", "patch is not a JSON Patch (RFC 6902)")
    return patch, None


def _read_patch(
    request: AdmissionRequest, response: Mapping[str, Any]
) -> tuple[list[JsonObject] | None, JsonObject | None, list[Flag]]:
    """Decode and apply ``response.patch``; without one, the object is unchanged."""
    patch, flag = _decode_patch(response)
    if flag is not None:
        return None, None, [flag]
    if patch is None:
        return None, request.object, []
    if request.object is None:
        return patch, None, [Flag("patch-without-object", "a patch, but the request has no object")]
    try:
        patched = apply_patch(request.object, patch)
    except ReviewError as error:
        return patch, None, [Flag("patch-does-not-apply", str(error))]
    return patch, patched, []


def apply_patch(obj: Mapping[str, Any], patch: Sequence[Mapping[str, Any]]) -> JsonObject:
    """``obj`` after ``patch``, leaving ``obj`` alone. Raises :class:`ReviewError`.

    Copy on write: before each operation, the containers on its path (and on a move's
    ``from``) are copied, and the operation is applied in place to those copies. The
    result shares every untouched part with ``obj`` — a webhook's few ops copy a few
    small containers instead of the whole object (a JSON round trip of a 4 KB Pod cost
    more than the patching itself). Callers read the result; they never mutate it.
    """
    doc: Any = dict(obj)
    try:
        for op in patch:
            if op.get("op") != "test":
                _copy_parents(doc, op.get("path"))
                if op.get("op") == "move":
                    _copy_parents(doc, op.get("from"))
            doc = jsonpatch.apply_patch(doc, [op], in_place=True)
        result = doc
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
        raise ReviewError(f"the patch does not apply to the object: {error}") from error
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise ReviewError(f"the patch does not apply to the object: {error!r}") from error
    if not isinstance(result, dict):
        raise ReviewError("the patch replaces the object with a non-object")
    return result


def _copy_parents(doc: Any, pointer: Any) -> None:
    """Replace, in ``doc`` (itself a copy), each container above ``pointer``'s target by a
    shallow copy, so an operation on the target changes no container ``doc`` shares.

    Stops where the path leaves the document: jsonpatch then reports the bad path.
    """
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        return
    node = doc
    for raw in pointer.split("/")[1:-1]:
        key: Any = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            if key not in node:
                return
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            key = int(key)
        else:
            return
        child = node[key]
        if isinstance(child, dict):
            child = dict(child)
        elif isinstance(child, list):
            child = list(child)
        else:
            return
        node[key] = child
        node = child


# --- comparison -----------------------------------------------------------------------


def compare(
    expected: AdmissionResponse, actual: AdmissionResponse, ignore: Ignore = NOTHING_IGNORED
) -> Comparison:
    """What differs in meaning. Patch text and op order do not matter; the result does.

    The fields are those of :func:`meaning_document`, which ``ignore``'s pointers address.
    """
    return compare_fields(
        (
            ("allowed", expected.allowed, actual.allowed),
            ("status.code", expected.status_code, actual.status_code),
            ("status.reason", expected.status_reason, actual.status_reason),
            ("status.message", expected.status_message, actual.status_message),
            ("warnings", list(expected.warnings), list(actual.warnings)),
            ("auditAnnotations", dict(expected.audit_annotations), dict(actual.audit_annotations)),
            ("object", expected.patched, actual.patched),
        ),
        ignore,
    )


def meaning_document(meaning: AdmissionResponse) -> JsonObject:
    """An answer's meaning as one JSON document: what ``--ignore`` pointers address and
    what the inspector shows side by side."""
    return {
        "allowed": meaning.allowed,
        "status": {
            "code": meaning.status_code,
            "reason": meaning.status_reason,
            "message": meaning.status_message,
        },
        "warnings": list(meaning.warnings),
        "auditAnnotations": dict(meaning.audit_annotations),
        "object": meaning.patched,
    }
