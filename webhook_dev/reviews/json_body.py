"""The JSON of a review as the door reads it, whatever its kind: loaded once, refused
with a message fit for an HTTP 400 when it is not JSON, nested too deep, or holds a lone
UTF-16 surrogate. Pure.

Every kind (:mod:`~webhook_dev.reviews.admission`, :mod:`~webhook_dev.reviews.conversion`)
shares these checks, so what the recorder, the index and the page may rely on (valid
Unicode, bounded depth) does not depend on which callback the apiserver made.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from webhook_dev.errors import ReviewError
from webhook_dev.reviews import fast_json
from webhook_dev.reviews.flags import Flag

JsonObject = dict[str, Any]

# Deeper JSON than this is refused at the door: no Kubernetes object comes close, and
# everything downstream (redaction, the inspector's pretty printer, patches) may recurse.
MAX_DEPTH = 200
# A JSON escape of a UTF-16 surrogate: the only way a lone surrogate (which cannot be
# written as UTF-8, so no recording or page could hold it) gets into a parsed string.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def load(body: bytes | str | Mapping[str, Any], what: str) -> Any:
    """``body`` parsed (a mapping is taken as already parsed); :class:`ReviewError` if
    it is not JSON. ``what`` names it in the message (``request body``)."""
    if isinstance(body, Mapping):
        return body
    try:
        return fast_json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise ReviewError(f"{what} is not JSON: {error}") from error
    except RecursionError:
        raise ReviewError(f"{what} is nested deeper than {MAX_DEPTH} levels") from None


def check_values(review: Any, body: bytes | str | Mapping[str, Any]) -> None:
    """Refuse nesting past :data:`MAX_DEPTH` and strings that are not valid Unicode.

    ``body`` is what ``review`` was parsed from: a byte scan of it spares the walk of
    every value for nearly every review (few brackets, no surrogate escapes).
    """
    suspect_surrogates = _may_hold_surrogates(body)
    if suspect_surrogates or not _shallow_for_sure(body):
        _walk(review, suspect_surrogates=suspect_surrogates)


def _may_hold_surrogates(body: bytes | str | Mapping[str, Any]) -> bool:
    if isinstance(body, Mapping):
        return True  # already parsed: nothing to scan cheaply
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return _SURROGATE_ESCAPE.search(raw) is not None


def _shallow_for_sure(body: bytes | str | Mapping[str, Any]) -> bool:
    """Whether the raw body has too few brackets to nest past :data:`MAX_DEPTH` (each
    level opens one)."""
    if isinstance(body, Mapping):
        return False
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH


def _walk(review: Any, *, suspect_surrogates: bool) -> None:
    """Iterative: the check must not recurse."""
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


def check_metadata(metadata: Any, where: str) -> None:
    """An object's metadata as the apiserver sends it: names are strings, labels and
    annotations maps of strings (webhooks index into them without looking)."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise ReviewError(wrong_type(where, metadata, "an object"))
    for name in ("name", "namespace", "generateName", "uid", "resourceVersion"):
        if metadata.get(name) is not None and not isinstance(metadata[name], str):
            raise ReviewError(wrong_type(f"{where}.{name}", metadata[name], "a string"))
    for name in ("labels", "annotations"):
        values = metadata.get(name)
        if values is not None and not (
            isinstance(values, dict) and all(isinstance(v, str) for v in values.values())
        ):
            raise ReviewError(wrong_type(f"{where}.{name}", values, "a map of strings"))


def wrong_type(field: str, value: Any, expected: str) -> str:
    return f"{field} must be {expected}, got {json_type(value)}"


def json_type(value: Any) -> str:
    names = {list: "an array", dict: "an object", str: "a string", bool: "a boolean"}
    return names.get(type(value), "null" if value is None else "a number")


def metadata_of(obj: Any) -> JsonObject:
    """``obj["metadata"]`` when both are objects, else ``{}``: for reading names safely."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def load_review(
    body: bytes | str | Mapping[str, Any], expected: Mapping[str, tuple[str, ...]]
) -> JsonObject:
    """``body`` as a review of one of the ``expected`` kinds (kind -> its apiVersions):
    a JSON object with a ``request`` object holding a non-empty ``uid``.

    The message names what was expected, so a client that POSTs the wrong document (or
    an AdmissionReview to a conversion path's test) learns what the door takes.
    """
    review = load(body, "request body")
    wanted = " or ".join(expected)
    if not isinstance(review, dict):
        raise ReviewError(f"expected a JSON object (an {wanted}), got {json_type(review)}")
    api_version, kind = review.get("apiVersion"), review.get("kind")
    versions = expected.get(kind) if isinstance(kind, str) else None
    if versions is None or api_version not in versions:
        choices = ", or ".join(
            f"kind {name} with apiVersion {' or '.join(versions)}"
            for name, versions in expected.items()
        )
        raise ReviewError(
            f"not an {wanted}: apiVersion {api_version!r} kind {kind!r}; expected {choices}"
        )
    request = review.get("request")
    if not isinstance(request, dict):
        raise ReviewError(f"{kind} has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError(f"{kind} request has no uid (the answer must echo it)")
    return dict(review)


def read_answer(
    body: bytes | str | Mapping[str, Any], *, kind: str, api_version: str, uid: str
) -> tuple[JsonObject | None, list[Flag]]:
    """An answer's ``response`` object and the flags on its envelope, as the apiserver
    checks every kind's: JSON, a ``response`` object, the question's kind and apiVersion,
    the request's ``uid`` echoed. ``None`` when there is no response object to read."""
    try:
        review = load(body, "response body")
    except ReviewError as error:
        return None, [Flag("response-not-json", str(error))]
    if not isinstance(review, dict) or not isinstance(review.get("response"), dict):
        return None, [Flag("not-a-review", f"the answer is not a {kind} with a response")]
    flags: list[Flag] = []
    if review.get("kind") != kind:
        flags.append(Flag("kind-mismatch", f"kind is {review.get('kind')!r}, not {kind}"))
    if review.get("apiVersion") != api_version:
        flags.append(
            Flag(
                "version-mismatch",
                f"answered {review.get('apiVersion')!r} to a {api_version} request",
            )
        )
    response: JsonObject = review["response"]
    if response.get("uid") != uid:
        flags.append(Flag("uid-mismatch", f"uid {response.get('uid')!r} does not echo {uid!r}"))
    return response, flags
