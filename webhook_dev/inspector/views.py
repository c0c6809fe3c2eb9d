"""What the inspector page shows about an exchange, as plain JSON-ready dicts.

Pure (no network, no files): the server sends these, the page only lays them out. Keeping
the reviews' knowledge here (what counts as denied, how a patch decodes, what the object
looks like after it, each object before and after a conversion, when a call is "slow")
keeps the JavaScript small and lets unit tests pin what a user sees.
"""

from __future__ import annotations

import difflib
import json
from itertools import zip_longest
from typing import Any

from webhook_dev.errors import ReviewError
from webhook_dev.policy.decision import outcome_line
from webhook_dev.recording.summary import (
    SLOW_FRACTION,
    is_slow,
    list_flags,
    result_of,
    summary,
    timeout_seconds,
)
from webhook_dev.reviews import kinds
from webhook_dev.reviews.admission import AdmissionResponse
from webhook_dev.reviews.conversion import ConversionResponse, desired_version
from webhook_dev.reviews.exchange import Exchange
from webhook_dev.reviews.json_body import JsonObject, metadata_of

__all__ = [
    "SLOW_FRACTION",
    "detail",
    "is_slow",
    "list_flags",
    "result_of",
    "shadow_detail",
    "side_by_side",
    "summary",
    "timeout_seconds",
]

# Row kinds of a side-by-side diff.
SAME, CHANGED, REMOVED, ADDED = "same", "changed", "removed", "added"


def detail(exchange: Exchange) -> JsonObject:
    """Everything the detail pane shows for one exchange."""
    pane = _detail(exchange)
    if exchange.shadow is not None:
        pane["shadow"] = shadow_detail(exchange)
    return pane


def shadow_detail(exchange: Exchange) -> JsonObject:
    """``up --shadow``: production's answer (it decided) and the local code's, each as its
    meaning document, side by side with the diff, and what counted as a difference."""
    call = exchange.shadow
    assert call is not None
    comparison = call.comparison
    pane: JsonObject = {
        "entry": call.entry,
        "differed": list(comparison.fields) if comparison else [],
        "noise": [d.field for d in comparison.noise] if comparison else [],
        "not_compared": list(comparison.unknown) if comparison else [],
        "skipped": call.skipped,
        "production": None,
        "local": _document(exchange, exchange.http_status, exchange.response_review),
        "diff": None,
    }
    if call.control is not None:
        pane["production"] = {
            "http_status": call.control.http_status,
            "error": call.control.error,
            "duration_ms": _ms(call.control.duration_ms),
            "meaning": _document(exchange, call.control.http_status, call.control.review),
        }
        production, local = pane["production"]["meaning"], pane["local"]
        if production is not None and local is not None:
            pane["diff"] = side_by_side(production, local)
    return pane


def _document(exchange: Exchange, status: int, review: JsonObject | None) -> JsonObject | None:
    """An answer's meaning document (what ``--ignore`` addresses), ``None`` without one."""
    if status != 200 or review is None or exchange.request_review is None:
        return None
    try:
        request = kinds.parse_request(exchange.request_review)
    except ReviewError:
        return None
    meaning, _ = kinds.read_response(request, review)
    return None if meaning is None else kinds.of_request(request).document(meaning)


def _detail(exchange: Exchange) -> JsonObject:
    request = exchange.request
    meaning = _meaning(exchange)
    if isinstance(meaning, ConversionResponse) or exchange.review_kind is kinds.CONVERSION:
        converted = meaning if isinstance(meaning, ConversionResponse) else None
        return {**_common(exchange), "conversion": conversion_detail(request, converted)}
    admitted = meaning if isinstance(meaning, AdmissionResponse) else None
    before = request.get("object") if isinstance(request.get("object"), dict) else None
    old = request.get("oldObject") if isinstance(request.get("oldObject"), dict) else None
    after = admitted.patched if admitted is not None else None
    response = exchange.response
    return {
        **_common(exchange),
        "object": before,
        "old_object": old,
        "response": {
            "allowed": response.get("allowed"),
            "status": response.get("status"),
            "warnings": response.get("warnings") or [],
            "patch_type": response.get("patchType"),
        },
        "patch": admitted.patch if admitted is not None else None,
        "patch_problems": [
            flag.message for flag in exchange.flags if flag.code.startswith("patch")
        ],
        "after": after,
        "diff": side_by_side(before, after) if before is not None and after is not None else None,
        "update_diff": side_by_side(old, before)
        if old is not None and before is not None
        else None,
        "policy": policy_detail(exchange),
    }


def policy_detail(exchange: Exchange) -> JsonObject | None:
    """``--policy``: the policies' decision beside the webhook's answer, row by row
    (``differs`` where the comparison found a difference), and the two objects' diff when
    the mutations left a different object; ``None`` when no policy was evaluated."""
    record = exchange.policy
    if record is None:
        return None
    response = exchange.response
    status: JsonObject = response["status"] if isinstance(response.get("status"), dict) else {}
    decided = record.get("decision") if isinstance(record.get("decision"), dict) else None
    differences = [d for d in record.get("differences") or [] if isinstance(d, dict)]
    differing = {str(d.get("field")) for d in differences}
    rows: list[JsonObject] = []
    if decided is not None:
        denied = decided.get("allowed") is False
        for field, webhook, policy in (
            ("allowed", response.get("allowed"), decided.get("allowed")),
            ("status.code", status.get("code"), decided.get("code") if denied else None),
            ("status.message", status.get("message"), decided.get("denial") or None),
            ("warnings", response.get("warnings") or [], decided.get("warnings") or []),
        ):
            rows.append(
                {
                    "field": field,
                    "webhook": webhook,
                    "policy": policy,
                    "differs": field in differing,
                }
            )
    objects = [d for d in differences if d.get("field") == "object"]
    return {
        "outcome": record.get("outcome"),
        "line": outcome_line(record),
        "side": record.get("side"),
        "matched": list(decided.get("matched") or []) if decided else [],
        "rows": rows,
        "object_diff": side_by_side(objects[0].get("webhook"), objects[0].get("policy"))
        if objects
        else None,
    }


def conversion_detail(request: JsonObject, meaning: ConversionResponse | None) -> JsonObject:
    """A conversion's pane: the desired version, the result, and each object before and
    after (as the apiserver keeps it), with their diff."""
    objects = request.get("objects")
    objects = objects if isinstance(objects, list) else []
    converted = meaning.converted if meaning is not None else None
    pairs: list[JsonObject] = []
    for index, before in enumerate(objects):
        after = converted[index] if converted is not None and index < len(converted) else None
        metadata = metadata_of(before)
        name = str(metadata.get("name") or "?")
        namespace = str(metadata.get("namespace") or "")
        pairs.append(
            {
                "name": f"{namespace}/{name}" if namespace else name,
                "from": before.get("apiVersion") if isinstance(before, dict) else None,
                "before": before,
                "after": after,
                "diff": side_by_side(before, after) if after is not None else None,
            }
        )
    return {
        "desired_api_version": desired_version(request),
        "succeeded": meaning.succeeded if meaning is not None else None,
        "message": meaning.status_message if meaning is not None else "",
        "objects": pairs,
    }


def _common(exchange: Exchange) -> JsonObject:
    """What every exchange's pane has, whatever its kind."""
    return {
        "summary": summary(exchange),
        "timing": {
            "started": exchange.started.isoformat(),
            "duration_ms": round(exchange.duration_ms, 3),
            "upstream_ms": None if exchange.upstream_ms is None else round(exchange.upstream_ms, 3),
            "read_ms": _ms(exchange.read_ms),
            "wait_ms": _ms(exchange.wait_ms),
            "checks_ms": _ms(exchange.checks_ms),
            "timeout_s": timeout_seconds(exchange),
            "generation": exchange.generation,
        },
        "error": exchange.error,
        "flags": [flag.to_json() for flag in exchange.flags],
        "request_review": exchange.request_review,
        "response_review": exchange.response_review,
    }


def side_by_side(before: Any, after: Any) -> list[JsonObject]:
    """Rows of a two-column diff of two JSON values, as pretty-printed text.

    Each row has ``kind`` (same, changed, removed, added), the ``left`` and ``right`` line
    (``None`` where that side has no line) and their 1-based line numbers. Key order is
    kept as sent, so the left column reads like the request the webhook received.
    """
    left, right = _pretty(before), _pretty(after)
    rows: list[JsonObject] = []
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows.extend(
                _row(SAME, left, i, right, j)
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            )
            continue
        kind = {"replace": CHANGED, "delete": REMOVED, "insert": ADDED}[tag]
        for i, j in zip_longest(range(i1, i2), range(j1, j2)):
            row_kind = (
                kind if (i is not None and j is not None) else (ADDED if i is None else REMOVED)
            )
            rows.append(_row(row_kind, left, i, right, j))
    return rows


def _row(kind: str, left: list[str], i: int | None, right: list[str], j: int | None) -> JsonObject:
    return {
        "kind": kind,
        "left": None if i is None else left[i],
        "right": None if j is None else right[j],
        "left_no": None if i is None else i + 1,
        "right_no": None if j is None else j + 1,
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _pretty(value: Any) -> list[str]:
    return json.dumps(value, indent=2, ensure_ascii=False).splitlines()


def _meaning(exchange: Exchange) -> kinds.Meaning | None:
    """The answer's meaning (decoded patch and patched object, or converted objects), or
    ``None`` without one."""
    if exchange.request_review is None or exchange.response_review is None:
        return None
    try:
        request = kinds.parse_request(exchange.request_review)
    except ReviewError:
        return None
    meaning, _ = kinds.read_response(request, exchange.response_review)
    return meaning
