"""What the inspector page shows about an exchange, as plain JSON-ready dicts.

Pure (no network, no files): the server sends these, the page only lays them out. Keeping
the AdmissionReview knowledge here (what counts as denied, how a patch decodes, what the
object looks like after it, when a call is "slow") keeps the JavaScript small and lets
unit tests pin what a user sees.
"""

from __future__ import annotations

import difflib
import json
from itertools import zip_longest
from typing import Any

from webhook_dev.admission.exchange import Exchange
from webhook_dev.admission.review import (
    AdmissionResponse,
    JsonObject,
    display_name,
    kind_of,
    parse_request,
    patch_op_count,
    read_response,
)
from webhook_dev.admission.timeouts import call_timeout
from webhook_dev.errors import ReviewError

SLOW_FRACTION = 0.8  # of the apiserver's timeout: past it, a busier cluster would time out

# Row kinds of a side-by-side diff.
SAME, CHANGED, REMOVED, ADDED = "same", "changed", "removed", "added"


def timeout_seconds(exchange: Exchange) -> float:
    """The apiserver's budget for this call: its ``?timeout=``, else the default 10 s."""
    return call_timeout(exchange.path)


def is_slow(exchange: Exchange) -> bool:
    """Took more than 80% of its timeout: it passes here but is one hiccup from failing."""
    return exchange.duration_ms > SLOW_FRACTION * timeout_seconds(exchange) * 1000


def result_of(exchange: Exchange) -> str:
    """``allowed``, ``denied``, ``error`` (the apiserver fails the call) or ``bad request``."""
    if not exchange.request:
        return "bad request"
    allowed = exchange.response.get("allowed")
    if exchange.http_status != 200 or not isinstance(allowed, bool):
        return "error"
    return "allowed" if allowed else "denied"


def list_flags(exchange: Exchange) -> list[dict[str, str]]:
    """The warnings shown in the list: invalid response, handler error, slow."""
    flags: list[dict[str, str]] = []
    if exchange.request and exchange.http_status >= 500:
        last_line = (exchange.error or "").strip().splitlines()[-1:] or [
            f"HTTP {exchange.http_status}"
        ]
        flags.append({"code": "handler-error", "label": "handler error", "message": last_line[0]})
    invalid = [flag for flag in exchange.flags if flag.code != "http-status"]
    if invalid:
        message = "; ".join(flag.message for flag in invalid)
        flags.append({"code": "invalid-response", "label": "invalid response", "message": message})
    if is_slow(exchange):
        budget = timeout_seconds(exchange)
        message = f"{exchange.duration_ms:.0f} ms of a {budget:g} s timeout"
        flags.append({"code": "slow", "label": "slow", "message": message})
    return flags


def summary(exchange: Exchange) -> JsonObject:
    """One row of the list: everything it shows, filters on, and searches."""
    request = exchange.request
    kind = kind_of(request) if request else ""
    status = exchange.response.get("status") or {}
    user = request.get("userInfo")
    return {
        "id": exchange.id,
        "time": exchange.started.isoformat(),
        "operation": str(request.get("operation") or ""),
        "kind": str(kind),
        "namespace": str(request.get("namespace") or ""),
        "name": display_name(request) if request else "",
        "user": str(user.get("username") or "") if isinstance(user, dict) else "",
        "uid": str(request.get("uid") or ""),
        "result": result_of(exchange),
        "message": str(status.get("message") or exchange.error or "")
        if isinstance(status, dict)
        else "",
        "http_status": exchange.http_status,
        "patch_ops": patch_op_count(exchange.response),
        "duration_ms": round(exchange.duration_ms, 2),
        "generation": exchange.generation,
        "path": exchange.path,
        "flags": list_flags(exchange),
    }


def detail(exchange: Exchange) -> JsonObject:
    """Everything the detail pane shows for one exchange."""
    request = exchange.request
    meaning = _meaning(exchange)
    before = request.get("object") if isinstance(request.get("object"), dict) else None
    old = request.get("oldObject") if isinstance(request.get("oldObject"), dict) else None
    after = meaning.patched if meaning is not None else None
    response = exchange.response
    return {
        "summary": summary(exchange),
        "object": before,
        "old_object": old,
        "response": {
            "allowed": response.get("allowed"),
            "status": response.get("status"),
            "warnings": response.get("warnings") or [],
            "patch_type": response.get("patchType"),
        },
        "patch": meaning.patch if meaning is not None else None,
        "patch_problems": [
            flag.message for flag in exchange.flags if flag.code.startswith("patch")
        ],
        "after": after,
        "diff": side_by_side(before, after) if before is not None and after is not None else None,
        "update_diff": side_by_side(old, before)
        if old is not None and before is not None
        else None,
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


def _meaning(exchange: Exchange) -> AdmissionResponse | None:
    """The answer's meaning (decoded patch, patched object), or ``None`` without one."""
    if exchange.request_review is None or exchange.response_review is None:
        return None
    try:
        admission = parse_request(exchange.request_review)
    except ReviewError:
        return None
    meaning, _ = read_response(admission, exchange.response_review)
    return meaning
