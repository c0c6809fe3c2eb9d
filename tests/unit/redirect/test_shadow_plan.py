"""Shadow mode's plan: a copy entry just before each production entry, removed by name."""

from __future__ import annotations

import base64
import copy
from typing import Any

from tests.unit.redirect.test_apply import MUTATING_CONFIG, OUR_CA, THEIR_CA, InMemoryCluster
from tests.unit.redirect.test_apply import TARGET as APPLY_TARGET
from tests.unit.redirect.test_personal_plan import TARGET, _config, _snapshot
from webhook_dev.redirect.apply import apply_plan, reappend_ca, restore_plan
from webhook_dev.redirect.plan import (
    ChangeKind,
    Outcome,
    RedirectPlan,
    apply_changes,
    restore_changes,
)
from webhook_dev.redirect.plan_builder import CONFIG_COLLECTIONS, MUTATING, EntryRef, Snapshot
from webhook_dev.redirect.scope import Scope
from webhook_dev.redirect.shadow_plan import (
    Shadowing,
    build_shadow_plan,
    copy_snapshot,
    token_of,
)
from webhook_dev.tls import certs

OTHER = {
    "name": "first.example.com",
    "clientConfig": {"url": "https://first.example.com/mutate"},
    "rules": [],
    "sideEffects": "None",
    "admissionReviewVersions": ["v1"],
}


def _shadowing(scope: Scope | None = None, owner: str = "alice") -> Shadowing:
    scope = scope or Scope()
    return Shadowing(scope, owner, token_of(scope, "webhooks/injector"))


def _two_entry_config() -> dict[str, Any]:
    config = _config()
    config["webhooks"] = [copy.deepcopy(OTHER), *config["webhooks"]]
    return config


def test_the_copy_stands_just_before_the_production_entry_and_leaves_it_alone() -> None:
    config = _two_entry_config()
    plan, shadowed = build_shadow_plan(_snapshot(config), TARGET, _shadowing())
    [change] = plan.changes
    assert change.kind is ChangeKind.ENTRY_INSERT
    during = apply_changes(config, plan.changes)
    names = [entry["name"] for entry in during["webhooks"]]
    assert names == ["first.example.com", shadowed[0].copy_name, "sidecar.example.com"]
    assert during["webhooks"][2] == config["webhooks"][1]  # production untouched
    assert apply_changes(during, plan.changes) == during  # idempotent


def test_the_copy_is_guarded_and_calls_the_shadow_route_with_our_ca() -> None:
    config = _config()
    plan, [shadowed] = build_shadow_plan(_snapshot(config), TARGET, _shadowing())
    copy_entry = plan.changes[0].after
    assert copy_entry["clientConfig"]["url"] == (
        f"https://10.0.0.2:40123/webhook-dev/shadow/{shadowed.key}"
    )
    assert copy_entry["failurePolicy"] == "Ignore"
    assert copy_entry["timeoutSeconds"] == 1
    assert copy_entry["sideEffects"] == "None"
    assert copy_entry["reinvocationPolicy"] == "Never"
    assert copy_entry["rules"] == config["webhooks"][0]["rules"]
    assert copy_entry["namespaceSelector"] == config["webhooks"][0]["namespaceSelector"]
    assert copy_entry["name"].startswith("webhook-dev-shadow.alice.")
    assert copy_entry["name"].count(".") >= 2


def test_a_scope_narrows_the_copy_and_keeps_a_teammates_exclusion() -> None:
    teammate = {"name": "webhook-dev.bob.1234abcd", "expression": "!(request.namespace in ['b'])"}
    config = _config(matchConditions=[teammate])
    scope = Scope(namespaces=("a",), users=("alice",))
    plan, _ = build_shadow_plan(_snapshot(config), TARGET, _shadowing(scope))
    copy_entry = plan.changes[0].after
    assert teammate in copy_entry["matchConditions"]
    assert len(copy_entry["matchConditions"]) == 2
    expressions = copy_entry["namespaceSelector"]["matchExpressions"]
    assert {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a"]} in expressions


def test_down_removes_exactly_our_entry_wherever_it_went() -> None:
    config = _two_entry_config()
    plan, _ = build_shadow_plan(_snapshot(config), TARGET, _shadowing())
    during = apply_changes(config, plan.changes)
    during["webhooks"].reverse()  # someone reordered; someone else added an entry
    during["webhooks"].append({"name": "late.example.com"})
    restored, [result] = restore_changes(during, plan.changes)
    assert result.outcome is Outcome.RESTORED
    assert [e["name"] for e in restored["webhooks"]] == [
        "sidecar.example.com",
        "first.example.com",
        "late.example.com",
    ]
    again, [second] = restore_changes(restored, plan.changes)
    assert second.outcome is Outcome.ALREADY and again == restored


def test_two_developers_shadow_the_same_entry_side_by_side() -> None:
    config = _config()
    mine, _ = build_shadow_plan(_snapshot(config), TARGET, _shadowing(owner="alice"))
    theirs, _ = build_shadow_plan(_snapshot(config), TARGET, _shadowing(owner="bob"))
    both = apply_changes(apply_changes(config, mine.changes), theirs.changes)
    assert len(both["webhooks"]) == 3
    without_mine, _ = restore_changes(both, mine.changes)
    assert [e["name"] for e in without_mine["webhooks"]] == [
        theirs.changes[0].after["name"],
        "sidecar.example.com",
    ]


def test_a_deleted_production_entry_gets_no_copy() -> None:
    config = _config()
    plan, _ = build_shadow_plan(_snapshot(config), TARGET, _shadowing())
    gone = {**config, "webhooks": []}
    assert apply_changes(gone, plan.changes)["webhooks"] == []


def test_the_journal_round_trip_keeps_the_insert() -> None:
    plan, _ = build_shadow_plan(_snapshot(_config()), TARGET, _shadowing())
    assert RedirectPlan.from_json(plan.to_json()) == plan


def test_another_shadows_copy_is_not_shadowed_again_and_the_probe_aims_at_ours() -> None:
    config = _config()
    plan, _ = build_shadow_plan(_snapshot(config), TARGET, _shadowing(owner="bob"))
    with_bob = apply_changes(config, plan.changes)
    bob_copy = with_bob["webhooks"][0]["name"]
    snapshot = Snapshot(
        configs={("MutatingWebhookConfiguration", "team-injector"): with_bob},
        entries=[
            EntryRef("MutatingWebhookConfiguration", "team-injector", bob_copy),
            EntryRef("MutatingWebhookConfiguration", "team-injector", "sidecar.example.com"),
        ],
    )
    mine, [shadowed] = build_shadow_plan(snapshot, TARGET, _shadowing())
    assert shadowed.ref.entry_name == "sidecar.example.com"
    probe = copy_snapshot(snapshot, mine)
    assert [ref.entry_name for ref in probe.entries] == [shadowed.copy_name]


def test_an_injector_rewriting_the_copys_bundle_gets_our_ca_back_and_down_still_removes_it() -> (
    None
):
    cluster = InMemoryCluster([copy.deepcopy(MUTATING_CONFIG)])
    before = cluster.content()
    config = cluster.get(f"{CONFIG_COLLECTIONS[MUTATING]}/sidecar-mutate")
    snapshot = Snapshot(
        configs={(MUTATING, "sidecar-mutate"): config},
        entries=[EntryRef(MUTATING, "sidecar-mutate", "sidecar-mutate.example.com")],
    )
    plan, [shadowed] = build_shadow_plan(snapshot, APPLY_TARGET, _shadowing())
    apply_plan(cluster, plan, lambda step: None)
    assert reappend_ca(cluster, plan) == []  # nothing rewritten: nothing to do

    theirs = base64.b64encode(THEIR_CA).decode()

    def inject(obj: dict[str, Any]) -> None:  # cert-manager's cainjector: every entry
        for entry in obj["webhooks"]:
            entry["clientConfig"]["caBundle"] = theirs

    cluster.edit("MutatingWebhookConfiguration/sidecar-mutate", inject)
    assert reappend_ca(cluster, plan)
    entries = cluster.get(f"{CONFIG_COLLECTIONS[MUTATING]}/sidecar-mutate")["webhooks"]
    bundle = base64.b64decode(entries[0]["clientConfig"]["caBundle"])
    assert entries[0]["name"] == shadowed.copy_name
    assert certs.bundle_contains(bundle, OUR_CA) and certs.bundle_contains(bundle, THEIR_CA)
    restore_plan(cluster, plan, lambda step: None)
    after = cluster.content()["MutatingWebhookConfiguration/sidecar-mutate"]
    assert [e["name"] for e in after["webhooks"]] == ["sidecar-mutate.example.com"]
    assert after["webhooks"][0]["clientConfig"]["caBundle"] == theirs  # the injector's, kept
    assert before["MutatingWebhookConfiguration/sidecar-mutate"]["webhooks"][0]["name"] == (
        "sidecar-mutate.example.com"
    )
