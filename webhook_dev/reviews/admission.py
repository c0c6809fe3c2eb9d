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
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonpatch

from webhook_dev.errors import ReviewError
from webhook_dev.reviews import fast_json

GROUP = "admission.k8s.io"
VERSIONS = (f"{GROUP}/v1", f"{GROUP}/v1beta1")
KIND = "AdmissionReview"

JsonObject = dict[str, Any]

# Deeper JSON than this is refused at the door: no Kubernetes object comes close, and
# everything downstream (redaction, the inspector's pretty printer, patches) may recurse.
MAX_DEPTH = 200
# A JSON escape of a UTF-16 surrogate: the only way a lone surrogate (which cannot be
# written as UTF-8, so no recording or page could hold it) gets into a parsed string.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class AdmissionRequest:
    """The parts of ``request`` that webhook-dev reasons about; ``review`` keeps the rest."""

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
class Flag:
    """One reason the apiserver would reject (or a user should look at) an answer."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class AdmissionResponse:
    """The meaning of an answer: what replay compares. ``patched`` is the object after the patch."""

    allowed: bool | None
    status_code: int | None
    status_reason: str
    status_message: str
    warnings: tuple[str, ...]
    patch: list[JsonObject] | None
    patched: JsonObject | None


@dataclass(frozen=True)
class Difference:
    """One field that differs between an expected and an actual answer."""

    field: str
    expected: Any
    actual: Any


@dataclass(frozen=True)
class Comparison:
    differences: tuple[Difference, ...] = field(default_factory=tuple)

    @property
    def matches(self) -> bool:
        return not self.differences


# --- requests -------------------------------------------------------------------------


def parse_request(body: bytes | str | Mapping[str, Any]) -> AdmissionRequest:
    """Read an AdmissionReview request as the webhook would receive it.

    Raises :class:`ReviewError` with a message fit for an HTTP 400 when the body is not JSON,
    not an AdmissionReview of a version we know, or has no ``request.uid``.
    """
    review = _load(body, "request body")
    if not isinstance(review, dict):
        raise ReviewError(f"expected a JSON object (an AdmissionReview), got {_type(review)}")
    api_version, kind = review.get("apiVersion"), review.get("kind")
    if kind != KIND or api_version not in VERSIONS:
        raise ReviewError(
            f"not an AdmissionReview: apiVersion {api_version!r} kind {kind!r}; "
            f"expected kind {KIND} with apiVersion {' or '.join(VERSIONS)}"
        )
    request = review.get("request")
    if not isinstance(request, dict):
        raise ReviewError("AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("AdmissionReview request has no uid (the answer must echo it)")
    _check_request_shape(request)
    suspect_surrogates = _may_hold_surrogates(body)
    if suspect_surrogates or not _shallow_for_sure(body):
        _check_values(review, suspect_surrogates=suspect_surrogates)
    kind_ref = request.get("kind")
    if not isinstance(kind_ref, dict):
        kind_ref = {}
    obj, old = request.get("object"), request.get("oldObject")
    return AdmissionRequest(
        api_version=api_version,
        uid=uid,
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
            raise ReviewError(_wrong_type(f"request.{name}", request[name], "a string"))
    for name in _GVK_FIELDS:
        value = request.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ReviewError(_wrong_type(f"request.{name}", value, "an object"))
        for part, text in value.items():
            if not isinstance(text, str):
                raise ReviewError(_wrong_type(f"request.{name}.{part}", text, "a string"))
    for name in _OBJECT_FIELDS:
        if request.get(name) is not None and not isinstance(request[name], dict):
            raise ReviewError(_wrong_type(f"request.{name}", request[name], "an object or null"))
    for name in ("object", "oldObject"):
        if isinstance(request.get(name), dict):
            _check_metadata(request[name].get("metadata"), f"request.{name}.metadata")
    if request.get("dryRun") is not None and not isinstance(request["dryRun"], bool):
        raise ReviewError(_wrong_type("request.dryRun", request["dryRun"], "true or false"))
    _check_user_info(request.get("userInfo"))


def _check_metadata(metadata: Any, where: str) -> None:
    """An object's metadata as the apiserver sends it: names are strings, labels and
    annotations maps of strings (webhooks index into them without looking)."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise ReviewError(_wrong_type(where, metadata, "an object"))
    for name in ("name", "namespace", "generateName", "uid", "resourceVersion"):
        if metadata.get(name) is not None and not isinstance(metadata[name], str):
            raise ReviewError(_wrong_type(f"{where}.{name}", metadata[name], "a string"))
    for name in ("labels", "annotations"):
        values = metadata.get(name)
        if values is not None and not (
            isinstance(values, dict) and all(isinstance(v, str) for v in values.values())
        ):
            raise ReviewError(_wrong_type(f"{where}.{name}", values, "a map of strings"))


def _check_user_info(user: Any) -> None:
    if user is None:
        return
    if not isinstance(user, dict):
        raise ReviewError(_wrong_type("request.userInfo", user, "an object"))
    for name in ("username", "uid"):
        if user.get(name) is not None and not isinstance(user[name], str):
            raise ReviewError(_wrong_type(f"request.userInfo.{name}", user[name], "a string"))
    groups = user.get("groups")
    if groups is not None and not (
        isinstance(groups, list) and all(isinstance(g, str) for g in groups)
    ):
        raise ReviewError(_wrong_type("request.userInfo.groups", groups, "a list of strings"))
    extra = user.get("extra")
    if extra is not None and not (
        isinstance(extra, dict)
        and all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in extra.values())
    ):
        raise ReviewError(
            _wrong_type("request.userInfo.extra", extra, "an object of lists of strings")
        )


def _may_hold_surrogates(body: bytes | str | Mapping[str, Any]) -> bool:
    if isinstance(body, Mapping):
        return True  # already parsed: nothing to scan cheaply
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return _SURROGATE_ESCAPE.search(raw) is not None


def _shallow_for_sure(body: bytes | str | Mapping[str, Any]) -> bool:
    """Whether the raw body has too few brackets to nest past :data:`MAX_DEPTH` (each
    level opens one), which spares the walk of every value for nearly every review."""
    if isinstance(body, Mapping):
        return False
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH


def _check_values(review: Any, *, suspect_surrogates: bool) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` and (when the body had surrogate
    escapes) strings that are not valid Unicode. Iterative: the check must not recurse."""
    pending: list[tuple[Any, int]] = [(review, 1)]
    while pending:
        value, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise ReviewError(f"the review is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                if suspect_surrogates:
                    _check_text(key)
                if isinstance(item, dict | list):
                    pending.append((item, depth + 1))
                elif suspect_surrogates and isinstance(item, str):
                    _check_text(item)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict | list):
                    pending.append((item, depth + 1))
                elif suspect_surrogates and isinstance(item, str):
                    _check_text(item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ReviewError(
            "the review holds a lone UTF-16 surrogate (an escape such as \\ud800 without "
            "its pair): not valid Unicode, so no Kubernetes client would send it"
        ) from None


def _wrong_type(field: str, value: Any, expected: str) -> str:
    return f"{field} must be {expected}, got {_type(value)}"


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
    request: AdmissionRequest, body: bytes | str | Mapping[str, Any]
) -> tuple[AdmissionResponse | None, list[Flag]]:
    """Check an answer as kube-apiserver would, and say what it means.

    Returns the meaning (``None`` when the body is not an AdmissionReview at all) and the
    flags: each a reason the apiserver would fail the call, or a patch that cannot apply.
    """
    flags: list[Flag] = []
    try:
        review = _load(body, "response body")
    except ReviewError as error:
        return None, [Flag("response-not-json", str(error))]
    if not isinstance(review, dict) or not isinstance(review.get("response"), dict):
        return None, [Flag("not-a-review", "the answer is not an AdmissionReview with a response")]
    if review.get("kind") != KIND:
        flags.append(Flag("kind-mismatch", f"kind is {review.get('kind')!r}, not {KIND}"))
    if review.get("apiVersion") != request.api_version:
        flags.append(
            Flag(
                "version-mismatch",
                f"answered {review.get('apiVersion')!r} to a {request.api_version} request",
            )
        )
    response = review["response"]
    if response.get("uid") != request.uid:
        flags.append(
            Flag("uid-mismatch", f"uid {response.get('uid')!r} does not echo {request.uid!r}")
        )
    allowed = response.get("allowed")
    if not isinstance(allowed, bool):
        flags.append(Flag("allowed-missing", "response.allowed must be true or false"))
        allowed = None
    status = response.get("status") if isinstance(response.get("status"), dict) else {}
    warnings = response.get("warnings") or []
    if not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings):
        flags.append(Flag("bad-warnings", "response.warnings must be a list of strings"))
        warnings = []
    patch, patched, patch_flags = _read_patch(request, response)
    flags.extend(patch_flags)
    code = status.get("code")
    meaning = AdmissionResponse(
        allowed=allowed,
        status_code=code if isinstance(code, int) else None,
        status_reason=str(status.get("reason") or ""),
        status_message=str(status.get("message") or ""),
        warnings=tuple(warnings),
        patch=patch,
        patched=patched,
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


def compare(expected: AdmissionResponse, actual: AdmissionResponse) -> Comparison:
    """What differs in meaning. Patch text and op order do not matter; the result does."""
    differences = [
        Difference(name, want, got)
        for name, want, got in (
            ("allowed", expected.allowed, actual.allowed),
            ("status.code", expected.status_code, actual.status_code),
            ("status.reason", expected.status_reason, actual.status_reason),
            ("status.message", expected.status_message, actual.status_message),
            ("warnings", list(expected.warnings), list(actual.warnings)),
            ("object", expected.patched, actual.patched),
        )
        if want != got
    ]
    return Comparison(tuple(differences))


# --- helpers --------------------------------------------------------------------------


def _load(body: bytes | str | Mapping[str, Any], what: str) -> Any:
    if isinstance(body, Mapping):
        return body
    try:
        return fast_json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise ReviewError(f"{what} is not JSON: {error}") from error
    except RecursionError:
        raise ReviewError(f"{what} is nested deeper than {MAX_DEPTH} levels") from None


def _type(value: Any) -> str:
    names = {list: "an array", dict: "an object", str: "a string", bool: "a boolean"}
    return names.get(type(value), "null" if value is None else "a number")
