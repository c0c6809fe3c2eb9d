"""Redacting Secret values in recorded exchanges: keyed markers, so equal stays equal.

Pure (no files): the key comes from the caller (the workstation's is
:func:`~webhook_dev.recording.redaction_key.redaction_key`). A marker is
``webhook-dev:redacted:hmac-sha256:<24 hex digits>`` (``docs/recording-format.md``).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import json
from typing import Any

from webhook_dev.admission.review import JsonObject

REDACTED_PREFIX = "webhook-dev:redacted:hmac-sha256:"
_SECRET_FIELDS = ("data", "stringData")


def redact_value(value: Any, key: bytes) -> str:
    """A marker equal for equal values (under one key), revealing nothing else.

    Keyed (HMAC) so that short secrets cannot be found by hashing guesses. Idempotent.
    """
    if isinstance(value, str) and value.startswith(REDACTED_PREFIX):
        return value
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    digest = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:24]
    return REDACTED_PREFIX + digest


def redact_object(obj: JsonObject | None, key: bytes) -> JsonObject | None:
    """A Secret with each ``data``/``stringData`` value replaced by its marker."""
    if not isinstance(obj, dict) or obj.get("kind") != "Secret":
        return obj
    obj = copy.deepcopy(obj)
    for name in _SECRET_FIELDS:
        values = obj.get(name)
        if isinstance(values, dict):
            obj[name] = {k: redact_value(v, key) for k, v in values.items()}
    return obj


def redact_exchange(
    request_review: JsonObject | None, response_review: JsonObject | None, key: bytes
) -> tuple[JsonObject | None, JsonObject | None]:
    """Redact the Secret in the request and secret values a patch would write."""
    if not request_review or not isinstance(request_review.get("request"), dict):
        return request_review, response_review
    objects = (request_review["request"].get(name) for name in ("object", "oldObject"))
    if not any(isinstance(obj, dict) and obj.get("kind") == "Secret" for obj in objects):
        return request_review, response_review  # nothing to redact: no copy on the hot path
    request_review = copy.deepcopy(request_review)
    request = request_review["request"]
    for name in ("object", "oldObject"):
        if name in request:
            request[name] = redact_object(request[name], key)
    kind = request.get("kind") or {}
    if kind.get("kind") == "Secret" and response_review:
        response_review = _redact_patch(response_review, key)
    return request_review, response_review


def _redact_patch(response_review: JsonObject, key: bytes) -> JsonObject:
    response = response_review.get("response")
    if not isinstance(response, dict) or not isinstance(response.get("patch"), str):
        return response_review
    try:
        patch = json.loads(base64.b64decode(response["patch"], validate=True))
    except (binascii.Error, ValueError):
        return response_review
    if not isinstance(patch, list):
        return response_review
    for op in patch:
        if not isinstance(op, dict) or "value" not in op:
            continue
        path = str(op.get("path", ""))
        if path in ("/data", "/stringData") and isinstance(op["value"], dict):
            op["value"] = {k: redact_value(v, key) for k, v in op["value"].items()}
        elif path.startswith(("/data/", "/stringData/")):
            op["value"] = redact_value(op["value"], key)
        elif path in ("", "/") and isinstance(op["value"], dict):
            op["value"] = redact_object(op["value"], key)
    response_review = copy.deepcopy(response_review)
    response_review["response"]["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return response_review
