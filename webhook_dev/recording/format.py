"""The recording format: one exchange a JSON line, versioned.

Pure (no files): encoding (redacting secrets with :mod:`~webhook_dev.recording.redaction`)
and decoding with upgrades from older versions (as mitmproxy's ``io/compat``).
:mod:`~webhook_dev.recording.writer` writes files and :mod:`~webhook_dev.recording.reader`
reads them. The format is documented in ``docs/recording-format.md``; change both together
and bump :data:`VERSION`, adding an upgrade step to :data:`_UPGRADES`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from webhook_dev.errors import RecordingError
from webhook_dev.recording.redaction import may_hold_secrets, redact
from webhook_dev.reviews import fast_json
from webhook_dev.reviews.exchange import Exchange
from webhook_dev.reviews.flags import Flag
from webhook_dev.reviews.json_body import JsonObject
from webhook_dev.reviews.shadow import ShadowCall

VERSION = 1

# version n -> a function turning a version-n line into a version n+1 line.
_UPGRADES: dict[int, Callable[[JsonObject], JsonObject]] = {}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class UnsupportedVersion(RecordingError):
    """A line of a format version this webhook-dev cannot read: never skipped silently."""


def encode(exchange: Exchange, *, redaction_key: bytes | None) -> str:
    """One line (with its newline). ``redaction_key=None`` keeps secrets in clear.

    Always valid UTF-8: a string that cannot be (a lone surrogate in a hand-made answer)
    is written with JSON's ``\\u`` escapes instead of failing the line.
    """
    text = _dumps(_line(exchange))
    if redaction_key is not None and may_hold_secrets(text):
        text = _dumps(_line(redact(exchange, redaction_key)))
    return text


def _dumps(line: JsonObject) -> str:
    text = fast_json.dumps_compact(line) + "\n"
    try:
        text.encode()
    except UnicodeEncodeError:
        text = json.dumps(line, separators=(",", ":")) + "\n"
    return text


def _line(exchange: Exchange) -> JsonObject:
    line: JsonObject = {
        "version": VERSION,
        "id": exchange.id,
        "time": exchange.started.isoformat(),
        "path": exchange.path,
        "http_status": exchange.http_status,
        "duration_ms": round(exchange.duration_ms, 3),
        "upstream_ms": _ms(exchange.upstream_ms),
        "generation": exchange.generation,
        "request": exchange.request_review,
        "response": exchange.response_review,
        "flags": [flag.to_json() for flag in exchange.flags],
        "error": exchange.error,
    }
    for phase in ("read_ms", "wait_ms", "checks_ms"):  # optional: absent in older lines
        value = getattr(exchange, phase)
        if value is not None:
            line[phase] = round(value, 3)
    if exchange.namespace_labels is not None:  # optional too
        line["namespace"] = {"labels": exchange.namespace_labels}
    if exchange.shadow is not None:  # optional: only up --shadow writes it
        line["shadow"] = exchange.shadow.to_json()
    if exchange.policy is not None:  # optional too: only with --policy
        line["policy"] = exchange.policy
    return line


def decode(line: str | bytes, *, where: str = "line") -> Exchange:
    """An exchange from one line; :class:`RecordingError` names ``where`` when it cannot.

    Parsed by :func:`webhook_dev.reviews.fast_json.loads` (orjson, with the same values
    and errors as :mod:`json`): a million-line index build or replay is mostly this call.
    """
    try:
        data = fast_json.loads(line)
    except ValueError as error:
        raise RecordingError(f"{where}: not JSON ({error})") from error
    except RecursionError:
        raise RecordingError(f"{where}: nested too deeply to read") from None
    if not isinstance(data, dict) or not isinstance(data.get("version"), int):
        raise RecordingError(f"{where}: not a webhook-dev recording line (no version)")
    version = data["version"]
    if version > VERSION or (version < VERSION and version not in _UPGRADES):
        raise UnsupportedVersion(
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
            upstream_ms=_optional_ms(data.get("upstream_ms")),
            read_ms=_optional_ms(data.get("read_ms")),
            wait_ms=_optional_ms(data.get("wait_ms")),
            checks_ms=_optional_ms(data.get("checks_ms")),
            generation=data.get("generation"),
            flags=[Flag(f["code"], f["message"]) for f in data.get("flags") or []],
            error=data.get("error"),
            namespace_labels=_namespace_labels(data.get("namespace")),
            shadow=None if data.get("shadow") is None else ShadowCall.from_json(data["shadow"]),
            policy=_policy(data.get("policy")),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise RecordingError(f"{where}: malformed exchange ({error!r})") from error


def _namespace_labels(value: object) -> dict[str, str] | None:
    """The optional ``namespace.labels``: a map of strings, or ``None`` when absent."""
    if value is None:
        return None
    labels = value.get("labels") if isinstance(value, dict) else None
    if not isinstance(labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ValueError("namespace.labels must be a map of strings")
    return dict(labels)


def _policy(value: object) -> JsonObject | None:
    """The optional ``policy`` outcome: an object, or ``None`` when absent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("policy must be an object")
    return value


def _optional_ms(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"a duration must be a number, got {value!r}")
    return float(value)


def check_exchange(exchange: Exchange, where: str) -> None:
    """Refuse an exchange whose fields other code cannot rely on (``request`` an object,
    ``generation`` a number, ...), so one bad line costs that line, not the replay."""
    for name in ("request_review", "response_review"):
        value = getattr(exchange, name)
        if value is not None and not isinstance(value, dict):
            raise RecordingError(f"{where}: malformed exchange ({name} is not an object)")
    if exchange.generation is not None and (
        isinstance(exchange.generation, bool) or not isinstance(exchange.generation, int)
    ):
        raise RecordingError(f"{where}: malformed exchange (generation is not a number)")
    if exchange.error is not None and not isinstance(exchange.error, str):
        raise RecordingError(f"{where}: malformed exchange (error is not a string)")


def decode_lines(
    text: str, *, source: str, strict: bool = False
) -> tuple[list[Exchange], list[str]]:
    """All exchanges in a recording's text, and warnings (see :func:`iter_lines`)."""
    exchanges: list[Exchange] = []
    warnings: list[str] = []
    for item in iter_lines(text.splitlines(keepends=True), source=source, strict=strict):
        if isinstance(item, RecordingWarning):
            warnings.append(item.message)
        else:
            exchanges.append(item)
    return exchanges, warnings


def iter_lines(
    lines: Iterable[str], *, source: str, strict: bool = False
) -> Iterator[Exchange | RecordingWarning]:
    """Each exchange of a recording's lines, in order, and a warning for each line skipped.

    A line that cannot be read (a write torn by a crash or a full disk, a hand edit) is
    skipped with a :class:`RecordingWarning` naming it, so one bad line does not cost the
    whole file; ``strict`` makes it a :class:`RecordingError` instead. A lazy iterator: a
    recording larger than memory can be replayed.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            exchange = decode(line, where=where)
            check_exchange(exchange, where)
        except RecordingError as error:
            if strict or isinstance(error, UnsupportedVersion):
                raise
            unterminated = not line.endswith("\n")
            what = "an incomplete last line" if unterminated else "a damaged line"
            reason = error.message.removeprefix(f"{where}: ")
            yield RecordingWarning(f"{where}: skipped {what} ({reason})", error.message)
            continue
        yield exchange


@dataclass(frozen=True)
class RecordingWarning:
    """A line :func:`decode_lines` skipped, and why."""

    message: str
    error: str = ""  # why the line could not be read, naming it: ``file:line: not JSON ...``

    def __str__(self) -> str:
        return self.message
