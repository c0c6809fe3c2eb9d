"""Replay recorded exchanges against the current code and compare answers by meaning.

A library first (``up``, the inspector's replay button), the ``replay`` command second::

    target = AppUpstream("sample_webhook.sidecar_injector")  # or UrlUpstream.for_replay(url)
    await target.start(require_ready=True)
    try:
        result = await replay_exchange(exchange, target, idempotence=True)
        if not result.passed:
            print(render(result))
    finally:
        await target.close()

Two admission answers match when they agree on ``allowed``, the status code, reason and
message, the warnings, and the object that results from applying each patch to the
recorded request's object — the patch's text and the order of its operations do not
matter. Two conversion answers match when they agree on the result (status, code,
message) and on each converted object as the apiserver would keep it.

``idempotence`` asks more of the current code: an admission answer's patched object,
sent again, must come back unchanged; a conversion's objects, converted back to the
versions they came in, must come back as they were sent (a lossless round trip, the
property conversion webhooks are documented to need).
"""

from __future__ import annotations

import asyncio
import difflib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from webhook_dev.errors import RecordingError, ReviewError
from webhook_dev.recording.reader import RecordingWarning, iter_recording, open_check
from webhook_dev.recording.redaction import is_about_secrets, redact_object
from webhook_dev.recording.redaction_key import redaction_key
from webhook_dev.reviews import admission, conversion, fast_json, kinds
from webhook_dev.reviews.admission import AdmissionRequest, AdmissionResponse
from webhook_dev.reviews.comparison import (
    NOTHING_IGNORED,
    Comparison,
    Difference,
    Ignore,
    compare_fields,
)
from webhook_dev.reviews.conversion import ConversionRequest, ConversionResponse
from webhook_dev.reviews.exchange import Exchange
from webhook_dev.reviews.json_body import JsonObject
from webhook_dev.reviews.timeouts import call_timeout
from webhook_dev.serving.upstream import Upstream, UpstreamRequest, UpstreamResponse


@dataclass
class ReplayResult:
    """How the current code answered one recorded request, against the recorded answer."""

    where: str
    exchange: Exchange
    comparison: Comparison
    current_review: JsonObject | None = None
    current_status: int = 0
    problems: list[str] = field(default_factory=list)
    idempotence: Comparison | None = None

    @property
    def passed(self) -> bool:
        second_pass_ok = self.idempotence is None or self.idempotence.matches
        return self.comparison.matches and second_pass_ok

    @property
    def title(self) -> str:
        return title_of(self.exchange)

    def to_json(self) -> dict[str, Any]:
        def differences(comparison: Comparison | None) -> list[dict[str, Any]] | None:
            if comparison is None:
                return None
            return [
                {"field": d.field, "recorded": d.expected, "current": d.actual}
                for d in comparison.differences
            ]

        return {
            "where": self.where,
            "id": self.exchange.id,
            "title": self.title,
            "passed": self.passed,
            "differences": differences(self.comparison),
            "idempotence": differences(self.idempotence),
            "problems": self.problems,
            "current_status": self.current_status,
        }


def title_of(exchange: Exchange) -> str:
    """How a report names an exchange: ``Pod ns/name CREATE (uid ...)``, ``Website ns/a
    CONVERT to group/v2 (uid ...)``."""
    request = exchange.request
    review_kind = exchange.review_kind or kinds.ADMISSION
    subject = review_kind.subject(request)
    uid = request.get("uid") or "?"
    target = f" to {subject.target}" if subject.target else ""
    return f"{subject.kind or '?'} {subject.name} {subject.operation or '?'}{target} (uid {uid})"


async def replay_exchange(
    exchange: Exchange,
    target: Upstream,
    *,
    idempotence: bool = False,
    redaction_key: bytes | None = None,
    where: str = "",
    ignore: Ignore = NOTHING_IGNORED,
) -> ReplayResult:
    """Send ``exchange``'s request to ``target`` and compare with the recorded answer.

    ``redaction_key`` (the recorder's) lets answers about redacted Secrets compare equal.
    ``ignore`` mutes known differences (``--ignore``). A call ``up --shadow`` recorded is
    compared with *production's* answer, which decided it, when production gave one: the
    question after an edit is whether the code now agrees with production.
    Raises :class:`ReviewError` when the exchange has no valid request.
    """
    # As bytes, the request is checked the cheap way (a byte scan for surrogate escapes
    # and nesting) rather than by walking every value of a parsed dict, and is sent as is.
    body = _encode(exchange.request_review or {})
    request = kinds.parse_request(body)
    current = await _send(target, body, exchange.path)
    result = ReplayResult(where or exchange.id, exchange, Comparison())
    result.current_status = current.status
    result.current_review = fast_json.loads_object(current.body)
    actual, problems = _read(request, current, result.current_review)
    recorded_status, recorded_review = _control(exchange)
    if (
        recorded_status == current.status == 200
        and result.current_review is not None
        and result.current_review == recorded_review
    ):
        # The very answer recorded: the same meaning, without applying its patch again
        # (reading an answer is most of a replay's CPU, and most replays are this case).
        expected = actual
    else:
        expected = _meaning(request, recorded_status, recorded_review)
    result.problems = problems
    if redaction_key is not None and is_about_secrets(request.review["request"]):
        expected, actual = _redacted(expected, redaction_key), _redacted(actual, redaction_key)
    result.comparison = _compare(request, recorded_status, expected, current.status, actual, ignore)
    if not idempotence:
        return result
    if isinstance(request, AdmissionRequest) and isinstance(actual, AdmissionResponse):
        if actual.patched is not None:
            await _second_pass(result, request, actual.patched, target, exchange.path)
    elif (
        isinstance(request, ConversionRequest)
        and isinstance(actual, ConversionResponse)
        and actual.converted
    ):
        await _round_trip(result, request, actual.converted, target, exchange.path)
    return result


async def _second_pass(
    result: ReplayResult,
    request: AdmissionRequest,
    patched: JsonObject,
    target: Upstream,
    path: str,
) -> None:
    """The patched object sent again must not be changed again."""
    again = admission.with_object(request, patched, uid=f"{request.uid}-again")
    second_request = admission.parse_request(again)
    second = await _send(target, _encode(again), path)
    second_meaning, second_problems = _read(
        second_request, second, fast_json.loads_object(second.body)
    )
    result.problems.extend(f"second pass: {p}" for p in second_problems)
    twice = second_meaning.patched if isinstance(second_meaning, AdmissionResponse) else None
    result.idempotence = Comparison(
        () if twice == patched else (Difference(SECOND_PASS, patched, twice),)
    )


async def _round_trip(
    result: ReplayResult,
    request: ConversionRequest,
    converted: tuple[JsonObject, ...],
    target: Upstream,
    path: str,
) -> None:
    """The converted objects sent back to their own versions must come back as sent.

    The objects of one call can come in different versions (a list read); each version
    is one call back, as the apiserver would make it.
    """
    differences: list[Difference] = []
    for origin in dict.fromkeys(str(obj.get("apiVersion")) for obj in request.objects):
        indexes = [i for i, obj in enumerate(request.objects) if obj.get("apiVersion") == origin]
        back_review = conversion.with_objects(
            request, [converted[i] for i in indexes], desired=origin, uid=f"{request.uid}-back"
        )
        back_request = conversion.parse_request(back_review)
        answer = await _send(target, _encode(back_review), path)
        meaning, problems = _read(back_request, answer, fast_json.loads_object(answer.body))
        result.problems.extend(f"round trip to {origin}: {p}" for p in problems)
        back = meaning.converted if isinstance(meaning, ConversionResponse) else None
        for position, index in enumerate(indexes):
            sent = request.objects[index]
            returned = back[position] if back is not None else None
            if returned != sent:
                differences.append(Difference(f"{ROUND_TRIP} [{index}]", sent, returned))
    result.idempotence = Comparison(tuple(differences))


async def replay_files(
    paths: Sequence[Path], target: Upstream, *, idempotence: bool = False, strict: bool = False
) -> tuple[list[ReplayResult], list[str]]:
    """Replay every exchange of every file, in order; also returns the files' warnings.

    Holds every result: for large recordings use :func:`replay_stream`.
    """
    results: list[ReplayResult] = []
    warnings: list[str] = []
    async for item in replay_stream(paths, target, idempotence=idempotence, strict=strict):
        if isinstance(item, RecordingWarning):
            warnings.append(str(item))
        else:
            results.append(item)
    return results, warnings


async def replay_stream(
    paths: Sequence[Path], target: Upstream, *, idempotence: bool = False, strict: bool = False
) -> AsyncIterator[ReplayResult | RecordingWarning]:
    """Each result (and each damaged line skipped) as it comes, one exchange in memory.

    Every file is checked to open before the first call; with ``strict`` every file is
    read through first, so a damaged line refuses the run (:class:`RecordingError`)
    before anything is sent. A file in which no line at all can be read is not a
    recording: :class:`RecordingError` too, once its lines have been tried. Exchanges
    that cannot be replayed (no valid request, e.g. wrongly typed fields in a hand-made
    line) come out as failed results saying why.
    """
    for path in paths:
        open_check(path)
    if strict:
        for path in paths:
            for _ in iter_recording(path, strict=True):
                pass
    key = redaction_key()
    for path in paths:
        number = 0
        first_skipped: RecordingWarning | None = None
        for item in iter_recording(path, strict=strict):
            if isinstance(item, RecordingWarning):
                first_skipped = first_skipped or item
                yield item
                continue
            number += 1
            where = f"{path}:{number}"
            try:
                yield await replay_exchange(
                    item, target, idempotence=idempotence, redaction_key=key, where=where
                )
            except ReviewError as error:
                yield ReplayResult(
                    where,
                    item,
                    Comparison((Difference("request", "a valid review", str(error)),)),
                    problems=[f"not replayed: {error}"],
                )
        if number == 0 and first_skipped is not None:
            raise RecordingError(
                f"{path} is not a webhook-dev recording, no line could be read: "
                f"{first_skipped.error or first_skipped}"
            )


SECOND_PASS = "object after a second pass"
ROUND_TRIP = "object after a round trip"
# How the two sides of a diff are labelled: replay's comparison is recorded vs now; the
# idempotence checks compare what the current code gave with what it gives once more.
_SIDES = {
    SECOND_PASS: ("after the first pass", "after a second pass"),
    ROUND_TRIP: ("sent", "back"),
}


def render(result: ReplayResult) -> str:
    """A readable account of what differs (empty when the result passed)."""
    lines: list[str] = []
    for difference in result.comparison.differences + (
        result.idempotence.differences if result.idempotence else ()
    ):
        if difference.is_object:
            lines.append(f"  {difference.field}:")
            side = difference.field.split(" [")[0]
            before, after = _SIDES.get(side, ("recorded", "now"))
            lines.extend(
                "    " + line
                for line in difflib.unified_diff(
                    _pretty(difference.expected),
                    _pretty(difference.actual),
                    fromfile=before,
                    tofile=after,
                    lineterm="",
                )
            )
        else:
            lines.append(
                f"  {difference.field}: recorded {_short(difference.expected)}, "
                f"now {_short(difference.actual)}"
            )
    lines.extend(f"  note: {problem}" for problem in result.problems)
    return "\n".join(lines)


# --- helpers --------------------------------------------------------------------------


def _encode(value: JsonObject) -> bytes:
    """A review as JSON bytes: orjson, or :mod:`json` for what orjson cannot write
    (integers past 64 bits, lone surrogates, which it then escapes as ``\\u`` so
    :func:`~webhook_dev.reviews.kinds.parse_request` names them)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value).encode()


async def _send(target: Upstream, body: bytes, path: str) -> UpstreamResponse:
    deadline = asyncio.get_running_loop().time() + call_timeout(path or "/")
    request = UpstreamRequest(path=path or "/", body=body, headers=_HEADERS)
    return await target.send(request, deadline)


_HEADERS = {"Content-Type": "application/json"}


def _meaning(request: kinds.Request, status: int, body: JsonObject | None) -> kinds.Meaning | None:
    if status != 200 or body is None:
        return None
    meaning, _ = kinds.read_response(request, body)
    return meaning


def _read(
    request: kinds.Request, answer: UpstreamResponse, parsed: JsonObject | None
) -> tuple[kinds.Meaning | None, list[str]]:
    """The answer's meaning and problems; ``parsed``: its body already read as JSON (an
    object), so it is not parsed twice."""
    if answer.status != 200:
        detail = answer.error or answer.body.decode(errors="replace").strip()
        return None, [f"HTTP {answer.status}: {detail}" if answer.status else detail]
    meaning, flags = kinds.read_response(request, parsed if parsed is not None else answer.body)
    return meaning, [f"{flag.code}: {flag.message}" for flag in flags]


def _compare(
    request: kinds.Request,
    recorded_status: int,
    expected: kinds.Meaning | None,
    current_status: int,
    actual: kinds.Meaning | None,
    ignore: Ignore = NOTHING_IGNORED,
) -> Comparison:
    if expected is None or actual is None:
        if expected is None and actual is None and recorded_status == current_status:
            return Comparison()
        return compare_fields((("http status", recorded_status, current_status),), ignore)
    return kinds.of_request(request).compare(expected, actual, ignore)


def _control(exchange: Exchange) -> tuple[int, JsonObject | None]:
    """The answer to compare with: production's for a shadowed call it answered, else the
    recorded one."""
    shadow = exchange.shadow
    if shadow is not None and shadow.control is not None and shadow.control.http_status == 200:
        return 200, shadow.control.review
    return exchange.http_status, exchange.response_review


def _redacted(meaning: kinds.Meaning | None, key: bytes) -> kinds.Meaning | None:
    """An admission answer about a Secret, with the patched Secret's values redacted as
    the recording's are (conversions are of custom resources, never Secrets)."""
    if not isinstance(meaning, AdmissionResponse):
        return meaning
    return replace(meaning, patched=redact_object(meaning.patched, key, as_secret=True))


def _pretty(value: Any) -> list[str]:
    # orjson's indent-2 sorted layout is json.dumps(indent=2, sort_keys=True)'s, ten times
    # faster (every denied-now-allowed call renders two objects); non-ASCII stays as is.
    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        text = json.dumps(value, indent=2, sort_keys=True)
    return text.splitlines()


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 200 else text[:197] + "..."
