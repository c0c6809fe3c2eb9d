"""The recording format: one exchange a JSON line, versioned.

Pure (no files): encoding (redacting secrets with :mod:`~webhook_dev.recording.redaction`)
and decoding with upgrades from older versions (as mitmproxy's ``io/compat``).
:mod:`~webhook_dev.recording.writer` writes files and :mod:`~webhook_dev.recording.reader`
reads them. The format is documented in ``docs/recording-format.md``; change both together
and bump :data:`VERSION`, adding an upgrade step to :data:`_UPGRADES`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from webhook_dev.admission.exchange import Exchange
from webhook_dev.admission.review import Flag, JsonObject
from webhook_dev.errors import RecordingError
from webhook_dev.recording.redaction import redact_exchange

VERSION = 1

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
