"""Redacting Secret values in recorded exchanges: keyed markers, so equal stays equal.

Pure (no files): the key comes from the caller (the workstation's is
:func:`~webhook_dev.recording.redaction_key.redaction_key`). A marker is
``webhook-dev:redacted:hmac-sha256:<24 hex digits>`` (``docs/recording-format.md``).

A Secret's values travel further than its ``data``: ``kubectl apply`` copies the whole
object into the ``kubectl.kubernetes.io/last-applied-configuration`` annotation, a
``List`` carries Secrets as items, a request for ``resource: secrets`` may have no
``kind`` at all, and the user's code may echo a value in a deny message, a warning, an
annotation it writes, or the traceback of an exception. So redaction works in two
passes: first every Secret found (by what the request is about, and by ``kind``
anywhere in the objects) has its ``data``/``stringData`` replaced and its values
collected; then every string anywhere in the exchange (request, answer, decoded patch,
error) has each collected value replaced by that value's marker.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from webhook_dev.reviews.exchange import Exchange
from webhook_dev.reviews.json_body import JsonObject
from webhook_dev.reviews.shadow import ControlAnswer

REDACTED_PREFIX = "webhook-dev:redacted:hmac-sha256:"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_SECRET_FIELDS = ("data", "stringData")
_EPOCH = datetime.fromtimestamp(0, UTC)
# Values this short are redacted where they are a whole string, not inside other text:
# replacing "on" or "1" in every message would say more about the secret than it hides.
MIN_EMBEDDED = 4


def redact_value(value: Any, key: bytes) -> str:
    """A marker equal for equal values (under one key), revealing nothing else.

    Keyed (HMAC) so that short secrets cannot be found by hashing guesses. Idempotent.
    """
    if isinstance(value, str) and value.startswith(REDACTED_PREFIX):
        return value
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    digest = hmac.new(key, text.encode(errors="surrogatepass"), hashlib.sha256).hexdigest()[:24]
    return REDACTED_PREFIX + digest


def is_about_secrets(request: Mapping[str, Any]) -> bool:
    """Whether an admission ``request`` is about a Secret: its ``resource`` (which every
    request has, ``kind`` or not) or its ``kind``."""
    resource, kind = request.get("resource"), request.get("kind")
    if isinstance(resource, dict) and resource.get("resource") == "secrets":
        return not resource.get("group")
    return isinstance(kind, dict) and kind.get("kind") == "Secret" and not kind.get("group")


def may_hold_secrets(text: str) -> bool:
    """A cheap test on an exchange's JSON text: ``False`` means nothing to redact."""
    return '"Secret"' in text or '"secrets"' in text or '"SecretList"' in text


class _Redactor:
    """One exchange's redaction: the values found so far and the key to mark them with."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.values: set[str] = set()
        self.found = False  # a Secret was seen

    def secret(self, obj: JsonObject) -> JsonObject:
        """A copy of Secret ``obj`` with values replaced; its values remembered."""
        self.found = True
        obj = dict(obj)
        for name in _SECRET_FIELDS:
            values = obj.get(name)
            if isinstance(values, dict):
                self.remember(values.values(), encoded=name == "data")
                obj[name] = {k: redact_value(v, self.key) for k, v in values.items()}
        metadata = obj.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("annotations"), dict):
            annotations = dict(metadata["annotations"])
            if LAST_APPLIED in annotations:
                annotations[LAST_APPLIED] = self._last_applied(annotations[LAST_APPLIED])
            obj["metadata"] = {**metadata, "annotations": annotations}
        return obj

    def objects(self, value: Any, *, as_secret: bool = False) -> Any:
        """``value`` with every Secret in it redacted (at any depth: Lists, items, ...)."""
        if isinstance(value, dict):
            if as_secret or _is_secret(value):
                return self.secret(value)
            return {k: self.objects(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.objects(item) for item in value]
        return value

    def _last_applied(self, text: Any) -> Any:
        if not isinstance(text, str) or text.startswith(REDACTED_PREFIX):
            return text
        try:
            applied = json.loads(text)
        except ValueError:
            return redact_value(text, self.key)  # unreadable: none of it can be kept
        return json.dumps(self.objects(applied, as_secret=_is_secret(applied)))

    def remember(self, values: Iterable[Any], *, encoded: bool) -> None:
        for value in values:
            if not isinstance(value, str) or value.startswith(REDACTED_PREFIX):
                continue
            self.values.add(value)
            if encoded:
                try:
                    decoded = base64.b64decode(value, validate=True).decode()
                except (binascii.Error, ValueError):
                    continue
                if decoded:
                    self.values.add(decoded)

    def strings(self, value: Any) -> Any:
        """``value`` with each remembered secret value replaced wherever it appears."""
        if not self.values:
            return value
        return _map_strings(value, self.text)

    def text(self, text: str) -> str:
        if text in self.values:
            return redact_value(text, self.key)
        for secret in sorted(self.values, key=len, reverse=True):
            if len(secret) >= MIN_EMBEDDED and secret in text:
                text = text.replace(secret, redact_value(secret, self.key))
        return text


def _is_secret(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Secret" and str(obj.get("apiVersion") or "v1") == "v1"


def _has_secret(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            if _is_secret(item):
                return True
            pending.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            pending.extend(v for v in item if isinstance(v, dict | list))
    return False


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {k: _map_strings(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(item, change) for item in value]
    return value


def redact_object(obj: JsonObject | None, key: bytes, *, as_secret: bool = False) -> Any:
    """``obj`` with each Secret in it (``obj`` itself, List items, ...) redacted.

    ``as_secret``: treat ``obj`` as a Secret even without ``kind`` (``resource: secrets``).
    Idempotent; objects without a Secret come back unchanged.
    """
    if not isinstance(obj, dict):
        return obj
    return _Redactor(key).objects(obj, as_secret=as_secret)


def redact_exchange(
    request_review: JsonObject | None, response_review: JsonObject | None, key: bytes
) -> tuple[JsonObject | None, JsonObject | None]:
    """The request and the answer with every Secret value in them redacted (both passes)."""
    exchange = Exchange(
        id="",
        started=_EPOCH,
        path="/",
        request_review=request_review,
        response_review=response_review,
    )
    redacted = redact(exchange, key)
    return redacted.request_review, redacted.response_review


def may_hold_secrets_exchange(exchange: Exchange) -> bool:
    """Whether :func:`redact` could change ``exchange`` (without copying anything)."""
    review = exchange.request_review
    if not review or not isinstance(review.get("request"), dict):
        return False
    request = review["request"]
    return is_about_secrets(request) or any(
        _has_secret(request.get(name)) for name in ("object", "oldObject")
    )


def redact(exchange: Exchange, key: bytes) -> Exchange:
    """A copy of ``exchange`` holding no Secret value in clear (``exchange`` is left alone)."""
    request_review = exchange.request_review
    if not request_review or not isinstance(request_review.get("request"), dict):
        return exchange
    if not may_hold_secrets_exchange(exchange):
        return exchange  # the common case: found without copying anything
    request = dict(request_review["request"])
    about_secrets = is_about_secrets(request)
    redactor = _Redactor(key)
    for name in ("object", "oldObject"):
        if isinstance(request.get(name), dict):
            request[name] = redactor.objects(request[name], as_secret=about_secrets)
    if not redactor.found and not about_secrets:
        return exchange  # nothing secret in it
    request_review = redactor.strings({**request_review, "request": request})
    response_review = exchange.response_review
    if isinstance(response_review, dict):
        response_review = redactor.strings(_redact_patch(response_review, redactor, about_secrets))
    error = redactor.text(exchange.error) if exchange.error and redactor.values else exchange.error
    flags = [
        replace(flag, message=redactor.text(flag.message)) if redactor.values else flag
        for flag in exchange.flags
    ]
    shadow = exchange.shadow
    if shadow is not None:  # production's answers to the same request hold the same values
        shadow = replace(
            shadow,
            control=_redact_control(shadow.control, redactor, about_secrets),
            again=_redact_control(shadow.again, redactor, about_secrets),
        )
    # A policy's outcome (--policy) may quote the object: its messages, a mutated copy.
    policy = redactor.strings(exchange.policy) if exchange.policy else exchange.policy
    return replace(
        exchange,
        request_review=request_review,
        response_review=response_review,
        error=error,
        flags=flags,
        shadow=shadow,
        policy=policy,
    )


def _redact_control(
    answer: ControlAnswer | None, redactor: _Redactor, about_secrets: bool
) -> ControlAnswer | None:
    if answer is None or not isinstance(answer.review, dict):
        return answer
    review = redactor.strings(_redact_patch(answer.review, redactor, about_secrets))
    error = redactor.text(answer.error) if answer.error and redactor.values else answer.error
    return replace(answer, review=review, error=error)


def _redact_patch(response_review: JsonObject, redactor: _Redactor, about_secrets: bool) -> Any:
    response = response_review.get("response")
    if not isinstance(response, dict) or not isinstance(response.get("patch"), str):
        return response_review
    try:
        patch = json.loads(base64.b64decode(response["patch"], validate=True))
    except (binascii.Error, ValueError):
        return response_review
    if not isinstance(patch, list):
        return response_review
    key = redactor.key
    redacted_ops: list[Any] = []
    for op in patch:
        if not isinstance(op, dict) or "value" not in op:
            redacted_ops.append(op)
            continue
        op = dict(op)
        path = str(op.get("path", ""))
        if about_secrets and path in ("/data", "/stringData") and isinstance(op["value"], dict):
            redactor.remember(op["value"].values(), encoded=path == "/data")
            op["value"] = {k: redact_value(v, key) for k, v in op["value"].items()}
        elif about_secrets and path.startswith(("/data/", "/stringData/")):
            redactor.remember([op["value"]], encoded=path.startswith("/data/"))
            op["value"] = redact_value(op["value"], key)
        elif path in ("", "/") and isinstance(op["value"], dict):
            op["value"] = redactor.objects(op["value"], as_secret=about_secrets)
        else:
            op["value"] = redactor.objects(op["value"])
        redacted_ops.append(op)
    redacted_ops = redactor.strings(redacted_ops)
    encoded = base64.b64encode(json.dumps(redacted_ops).encode()).decode()
    return {**response_review, "response": {**response, "patch": encoded}}
