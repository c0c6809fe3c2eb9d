"""How every view names a call and counts its patch: one function each in the pure core."""

from __future__ import annotations

import base64
import json

from webhook_dev.reviews.admission import display_name, patch_op_count


def test_a_call_is_named_namespace_slash_name_or_generate_name_star_or_a_question_mark() -> None:
    assert display_name({"namespace": "default", "name": "web-0"}) == "default/web-0"
    unnamed = {"namespace": "default", "object": {"metadata": {"generateName": "web-"}}}
    assert display_name(unnamed) == "default/web-*"
    assert display_name({"object": {"metadata": {"name": "node-1"}}}) == "node-1"
    assert display_name({"namespace": "default"}) == "default/?"
    assert display_name({}) == "?"


def test_patch_ops_are_counted_only_for_a_readable_json_patch() -> None:
    ops = [{"op": "add", "path": "/a", "value": 1}, {"op": "remove", "path": "/b"}]
    patch = base64.b64encode(json.dumps(ops).encode()).decode()
    assert patch_op_count({"patchType": "JSONPatch", "patch": patch}) == 2
    assert patch_op_count({"allowed": True}) is None
    assert patch_op_count({"patchType": "JSONPatch", "patch": "not base64!"}) is None
    assert patch_op_count({"patch": patch}) is None  # no patchType: the apiserver refuses it


def test_an_exchange_counts_its_patch_once_and_keeps_a_count_given_to_it() -> None:
    from datetime import UTC, datetime

    from webhook_dev.reviews.admission import encode_patch
    from webhook_dev.reviews.exchange import Exchange

    patch = [{"op": "add", "path": "/a", "value": 1}, {"op": "remove", "path": "/b"}]
    answer = {
        "response": {
            "uid": "u",
            "allowed": True,
            "patchType": "JSONPatch",
            "patch": encode_patch(patch),
        }
    }
    exchange = Exchange(id="x", started=datetime.now(UTC), path="/", response_review=answer)
    assert exchange.patch_ops() == 2
    told = Exchange(id="y", started=datetime.now(UTC), path="/", response_review=answer)
    told.counted_patch_ops(5)  # whoever decoded it already says so
    assert told.patch_ops() == 5
    assert Exchange(id="z", started=datetime.now(UTC), path="/").patch_ops() is None
