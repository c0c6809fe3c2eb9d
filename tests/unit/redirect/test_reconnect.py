"""Making the apiserver reconnect: a new caBundle value with the same trust, undone exactly."""

from __future__ import annotations

import base64
import json

import pytest

from tests.unit.redirect.test_plan import (
    OUR_CA,
    TARGET,
    THEIR_CA,
    _apply,
    _mutating,
    _objects,
    _restore,
    _snapshot,
)
from webhook_dev.redirect.plan import Outcome, RedirectPlan, reconnect_changes
from webhook_dev.redirect.plan_builder import MUTATING, build_plan
from webhook_dev.tls import certs

CONFIG = f"{MUTATING}/sidecar"


def _reconnected(plan: RedirectPlan, objects: dict[str, dict], times: int) -> dict[str, dict]:
    for _ in range(times):
        objects = {
            key: reconnect_changes(
                obj, [c for c in plan.changes if f"{c.ref.kind}/{c.ref.name}" == key]
            )
            for key, obj in objects.items()
        }
    return objects


def _bundle(objects: dict[str, dict]) -> bytes:
    return base64.b64decode(objects[CONFIG]["webhooks"][0]["clientConfig"]["caBundle"])


def test_each_reconnect_is_a_new_ca_bundle_trusting_the_same_cas() -> None:
    plan = build_plan(_snapshot(), TARGET)
    redirected = _apply(plan, _objects(_snapshot()))
    once, twice = _reconnected(plan, redirected, 1), _reconnected(plan, redirected, 2)
    assert len({_bundle(redirected), _bundle(once), _bundle(twice)}) == 3
    trusted = {certs.split_bundle(THEIR_CA)[0], certs.split_bundle(OUR_CA)[0]}
    for objects in (once, twice):
        assert set(certs.split_bundle(_bundle(objects))) == trusted


@pytest.mark.parametrize("times", [1, 3])
def test_down_after_reconnects_gives_back_the_byte_equal_bundle(times: int) -> None:
    snapshot = _snapshot()
    plan = build_plan(snapshot, TARGET)
    original = _objects(snapshot)
    restored, outcomes = _restore(plan, _reconnected(plan, _apply(plan, original), times))
    assert json.dumps(restored, sort_keys=True) == json.dumps(original, sort_keys=True)
    assert set(outcomes) == {Outcome.RESTORED}


def test_an_entry_that_had_no_bundle_loses_every_copy_of_ours() -> None:
    config = _mutating()
    del config["webhooks"][0]["clientConfig"]["caBundle"]
    snapshot = _snapshot(config)
    plan = build_plan(snapshot, TARGET)
    restored, _ = _restore(plan, _reconnected(plan, _apply(plan, _objects(snapshot)), 2))
    assert "caBundle" not in restored[CONFIG]["webhooks"][0]["clientConfig"]
