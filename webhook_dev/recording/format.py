"""The recording format: one exchange a JSON line, versioned, with secrets redacted.

Pure (no files): encoding, decoding with upgrades from older versions (as mitmproxy's
``io/compat``), and redaction. ``recorder`` writes files; ``replay`` reads them. The format
is documented in ``docs/recording-format.md``; change both together and bump
:data:`VERSION`, adding an upgrade step to :data:`_UPGRADES`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from webhook_dev.admission.exchange import Exchange
from webhook_dev.admission.review import Flag, JsonObject
from webhook_dev.errors import RecordingError

VERSION = 1
REDACTED_PREFIX = "webhook-dev:redacted:hmac-sha256:"
_SECRET_FIELDS = ("data", "stringData")

# version n -> a function turning a version-n line into a version n+1 line.
_UPGRADES: dict[int, Callable[[JsonObject], JsonObject]] = {}


def encode(exchange: Exchange, *, redaction_key: bytes | None) -> str:
    """One line (with its newline). ``redaction_key=None`` keeps secrets in clear."""
    request_review, response_review = exchange.request_review, exchange.response_review
    if redaction_key is not None:
        request_review, response_review = redact_exchange(
            request_review, response_review, redaction_key
        )
    line = {
        "version": VERSION,
        "id": exchange.id,
        "time": exchange.started.isoformat(),
        "path": exchange.path,
        "http_status": exchange.http_status,
        "duration_ms": round(exchange.duration_ms, 3),
        "upstream_ms": None if exchange.upstream_ms is None else round(exchange.upstream_ms, 3),
        "generation": exchange.generation,
        "request": request_review,
        "response": response_review,
        "flags": [flag.to_json() for flag in exchange.flags],
        "error": exchange.error,
    }
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n"


def decode(line: str, *, where: str = "line") -> Exchange:
    """An exchange from one line; :class:`RecordingError` names ``where`` when it cannot."""
    try:
        data = json.loads(line)
    except ValueError as error:
        raise RecordingError(f"{where}: not JSON ({error})") from error
    if not isinstance(data, dict) or not isinstance(data.get("version"), int):
        raise RecordingError(f"{where}: not a webhook-dev recording line (no version)")
    version = data["version"]
    if version > VERSION or (version < VERSION and version not in _UPGRADES):
        raise RecordingError(
            f"{where}: recording format version {version} is not supported "
            f"(this webhook-dev reads version {VERSION})",
            hint="upgrade webhook-dev" if version > VERSION else None,
        )
    while data["version"] < VERSION:
        data = _UPGRADES[data["version"]](data)
    try:
        return Exchange(
            id=str(data["id"]),
            started=datetime.fromisoformat(data["time"]),
            path=str(data.get("path") or "/"),
            http_status=int(data.get("http_status") or 0),
            request_review=data.get("request"),
            response_review=data.get("response"),
            duration_ms=float(data.get("duration_ms") or 0.0),
            upstream_ms=data.get("upstream_ms"),
            generation=data.get("generation"),
            flags=[Flag(f["code"], f["message"]) for f in data.get("flags") or []],
            error=data.get("error"),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise RecordingError(f"{where}: malformed exchange ({error!r})") from error


def decode_lines(text: str, *, source: str) -> tuple[list[Exchange], list[str]]:
    """All exchanges in a recording's text, and warnings.

    A last line without its newline is what a crash mid-write would leave (the recorder
    writes whole lines, so it should not happen); it is skipped with a warning instead of
    failing the whole file. Anything else malformed is a :class:`RecordingError`.
    """
    exchanges: list[Exchange] = []
    warnings: list[str] = []
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            exchanges.append(decode(line, where=where))
        except RecordingError:
            if number == len(lines):  # unterminated last line
                warnings.append(f"{where}: skipped an incomplete last line")
                continue
            raise
    return exchanges, warnings


# --- redaction ------------------------------------------------------------------------


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
