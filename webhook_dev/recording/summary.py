"""One exchange as a list row: what the inspector's list shows, the index stores, and
``--where`` filters on.

Pure (no files). It lives with the recording rather than the inspector because three
layers need the same row: the index (:mod:`~webhook_dev.recording.index`), ``replay
--where`` and the page; one definition keeps "denied" or "slow" meaning the same in all.
"""

from __future__ import annotations

from webhook_dev.reviews.exchange import Exchange
from webhook_dev.reviews.json_body import JsonObject
from webhook_dev.reviews.timeouts import call_timeout

SLOW_FRACTION = 0.8  # of the apiserver's timeout: past it, a busier cluster would time out


def timeout_seconds(exchange: Exchange) -> float:
    """The apiserver's budget for this call: its ``?timeout=``, else the default 10 s."""
    return call_timeout(exchange.path)


def is_slow(exchange: Exchange) -> bool:
    """Took more than 80% of its timeout: it passes here but is one hiccup from failing."""
    return exchange.duration_ms > SLOW_FRACTION * timeout_seconds(exchange) * 1000


def result_of(exchange: Exchange) -> str:
    """``allowed`` or ``denied`` (admission), ``converted`` or ``failed`` (conversion),
    ``error`` (the apiserver fails the call: no usable answer) or ``bad request``."""
    review_kind = exchange.review_kind
    if review_kind is None or not exchange.request:
        return "bad request"
    result = review_kind.result(exchange.response) if exchange.http_status == 200 else None
    return result or "error"


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
    review_kind = exchange.review_kind
    subject = review_kind.subject(request) if review_kind is not None and request else None
    message = review_kind.message(exchange.response) if review_kind is not None else ""
    user = request.get("userInfo")
    return {
        "id": exchange.id,
        "time": exchange.started.isoformat(),
        "operation": subject.operation if subject else "",
        "kind": subject.kind if subject else "",
        "namespace": subject.namespace if subject else "",
        "name": subject.name if subject else "",
        "user": str(user.get("username") or "") if isinstance(user, dict) else "",
        "uid": str(request.get("uid") or ""),
        "result": result_of(exchange),
        "message": message or exchange.error or "",
        "http_status": exchange.http_status,
        "patch_ops": exchange.patch_ops(),
        "duration_ms": round(exchange.duration_ms, 2),
        "generation": exchange.generation,
        "path": exchange.path,
        "flags": list_flags(exchange),
        "review": review_kind.name if review_kind is not None else "",
    }
