"""Secret values are redacted wherever they travel, not only in ``data`` (issue 15, finding 2)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from tests.reviews import request_review
from webhook_dev.inspector.feed import ExchangeFeed
from webhook_dev.inspector.views import detail
from webhook_dev.recording import format as recording
from webhook_dev.recording.redaction import LAST_APPLIED, REDACTED_PREFIX
from webhook_dev.reviews.admission import encode_patch
from webhook_dev.reviews.exchange import Exchange, now

KEY = b"k" * 32
VALUE = "hunter2-very-secret"
ENCODED = base64.b64encode(VALUE.encode()).decode()


def _secret(**extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "default"},
        "data": {"password": ENCODED},
        **extra,
    }


def _line(exchange: Exchange) -> str:
    return recording.encode(exchange, redaction_key=KEY)


def _exchange(
    review: dict[str, Any], response: dict[str, Any] | None = None, **kw: Any
) -> Exchange:
    return Exchange(
        id="x",
        started=now(),
        path="/",
        http_status=200,
        request_review=review,
        response_review=response,
        **kw,
    )


def _answer(**response: Any) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "3f1c-uid", "allowed": False, **response},
    }


def _clear(text: str) -> bool:
    return VALUE not in text and ENCODED not in text


def test_the_last_applied_configuration_annotation_is_redacted() -> None:
    secret = _secret()
    secret["metadata"]["annotations"] = {LAST_APPLIED: json.dumps(_secret())}
    line = _line(_exchange(request_review(secret, kind="Secret")))
    assert _clear(line) and REDACTED_PREFIX in line


def test_secrets_inside_a_list_are_redacted() -> None:
    listed = {"apiVersion": "v1", "kind": "List", "items": [_secret(), _secret()]}
    review = request_review(listed, kind="List")
    review["request"]["resource"] = {"group": "example.io", "version": "v1", "resource": "bundles"}
    assert _clear(_line(_exchange(review)))


def test_a_secret_without_kind_is_redacted_by_its_resource() -> None:
    secret = _secret()
    del secret["kind"]
    review = request_review(secret, kind="Secret")
    del review["request"]["kind"]
    assert _clear(_line(_exchange(review)))


def test_values_echoed_in_messages_warnings_tracebacks_and_annotations_are_redacted() -> None:
    review = request_review(_secret(), kind="Secret")
    patch = [{"op": "add", "path": "/metadata/annotations/copy", "value": f"was {VALUE}"}]
    response = _answer(
        status={"message": f"password {VALUE} is too weak"},
        warnings=[f"saw {ENCODED}"],
        patchType="JSONPatch",
        patch=encode_patch(patch),
    )
    error = f'Traceback ...\nValueError: bad password "{VALUE}"\n'
    line = _line(_exchange(review, response, error=error))
    decoded = json.loads(line)
    patch_text = base64.b64decode(decoded["response"]["response"]["patch"]).decode()
    assert _clear(line) and _clear(patch_text)
    assert "is too weak" in line  # the rest of the message stays readable


def test_the_inspector_feed_redacts_unless_asked_not_to(state_dir: Path) -> None:
    review = request_review(_secret(), kind="Secret")
    exchange = _exchange(review, _answer(status={"message": f"no: {VALUE}"}))
    shown = ExchangeFeed(redact=True)
    shown.add(exchange)
    page = json.dumps([shown.rows(), detail(shown.get("x") or exchange)])
    assert _clear(page)
    clear = ExchangeFeed(redact=False)
    clear.add(exchange)
    assert VALUE in json.dumps(detail(clear.get("x") or exchange))


def test_exchanges_without_secrets_are_left_alone() -> None:
    exchange = _exchange(request_review(), _answer(status={"message": "hunter2"}))
    assert json.loads(_line(exchange))["response"] == exchange.response_review
