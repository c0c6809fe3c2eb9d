"""A personal redirect's copy, its narrowing of the original, and the element-level restore
that keeps a third party's edits and a teammate's own exclusion."""

from __future__ import annotations

import copy
from typing import Any

from webhook_dev.redirect.personal_plan import (
    Personal,
    build_personal_plan,
    copy_snapshot,
    ordering_warnings,
)
from webhook_dev.redirect.plan import (
    ChangeKind,
    Outcome,
    RedirectPlan,
    apply_changes,
    restore_changes,
)
from webhook_dev.redirect.plan_builder import MUTATING, EntryRef, Snapshot, Target
from webhook_dev.redirect.scope import Scope, version_allows_match_conditions
from webhook_dev.tls import certs

OUR_CA = certs.new_ca("webhook-dev local CA").cert_pem
TARGET = Target("10.0.0.2", 40123, OUR_CA, "session-1")


def _config(name: str = "team-injector", **entry: Any) -> dict[str, Any]:
    webhook = {
        "name": "sidecar.example.com",
        "clientConfig": {
            "service": {"namespace": "webhooks", "name": "injector", "path": "/mutate"},
            "caBundle": "VEVBTQ==",
        },
        "rules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["pods"],
            }
        ],
        "namespaceSelector": {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": ["kube-system"],
                }
            ]
        },
        "failurePolicy": "Fail",
        "timeoutSeconds": 10,
        "reinvocationPolicy": "IfNeeded",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        **entry,
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": MUTATING,
        "metadata": {"name": name, "resourceVersion": "7"},
        "webhooks": [webhook],
    }


def _snapshot(config: dict[str, Any]) -> Snapshot:
    name = config["metadata"]["name"]
    return Snapshot(
        configs={(MUTATING, name): config},
        entries=[EntryRef(MUTATING, name, "sidecar.example.com")],
    )


def _personal(scope: Scope, owner: str = "alice") -> Personal:
    return Personal(scope, owner, scope.token("webhooks/injector"))


def _plan(config: dict[str, Any], personal: Personal) -> RedirectPlan:
    return build_personal_plan(_snapshot(config), TARGET, personal)


def _entry(config: dict[str, Any]) -> dict[str, Any]:
    return dict(config["webhooks"][0])


def test_the_copy_calls_the_transport_by_url_with_our_ca_and_only_in_the_scope() -> None:
    plan = _plan(_config(), _personal(Scope(namespaces=("a",))))
    [create] = plan.creates
    assert create.ref.name == "webhook-dev.alice.team-injector"
    assert create.ref.kind == MUTATING
    copied = create.manifest["webhooks"][0]
    assert copied["clientConfig"]["url"] == "https://10.0.0.2:40123/mutate"
    assert "service" not in copied["clientConfig"]
    assert certs.split_bundle(__import__("base64").b64decode(copied["clientConfig"]["caBundle"]))
    assert copied["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]},
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a"]},
    ]
    assert [rule["scope"] for rule in copied["rules"]] == ["Namespaced"]
    assert copied["reinvocationPolicy"] == "IfNeeded"
    assert (copied["failurePolicy"], copied["timeoutSeconds"]) == ("Ignore", 5)
    assert "matchConditions" not in copied


def test_the_guard_is_the_copys_only_the_original_keeps_its_failure_policy() -> None:
    config = _config()
    plan = _plan(config, _personal(Scope(namespaces=("a",))))
    narrowed = apply_changes(config, plan.changes)
    assert _entry(narrowed)["failurePolicy"] == "Fail"
    assert _entry(narrowed)["timeoutSeconds"] == 10
    assert _entry(narrowed)["clientConfig"] == _entry(config)["clientConfig"]


def test_a_namespace_scope_narrows_the_original_with_one_marked_not_in() -> None:
    config = _config()
    personal = _personal(Scope(namespaces=("a", "a2")))
    plan = _plan(config, personal)
    [change] = plan.changes
    assert change.kind is ChangeKind.LIST_ADD
    narrowed = apply_changes(config, plan.changes)
    expressions = _entry(narrowed)["namespaceSelector"]["matchExpressions"]
    assert expressions[0]["values"] == ["kube-system"]
    assert expressions[1] == {
        "key": "kubernetes.io/metadata.name",
        "operator": "NotIn",
        "values": ["a", "a2", personal.marker],
    }
    assert apply_changes(narrowed, plan.changes) == narrowed  # idempotent


def test_a_user_scope_is_a_cel_condition_in_the_copy_and_its_negation_in_the_original() -> None:
    config = _config(matchConditions=[{"name": "not-robots", "expression": "true"}])
    personal = _personal(Scope(users=("alice",), groups=("devs",)))
    plan = _plan(config, personal)
    copied = plan.creates[0].manifest["webhooks"][0]
    assert copied["matchConditions"][0] == {"name": "not-robots", "expression": "true"}
    condition = copied["matchConditions"][1]
    assert condition["name"] == personal.marker
    assert 'request.userInfo.username in ["alice"]' in condition["expression"]
    assert 'g in ["devs"]' in condition["expression"]
    assert "rules" in copied and "scope" not in copied["rules"][0]  # no namespace scope
    narrowed = _entry(apply_changes(config, plan.changes))
    assert narrowed["namespaceSelector"] == _entry(config)["namespaceSelector"]
    assert narrowed["matchConditions"][1]["expression"].startswith("!(")


def test_namespace_and_user_together_exclude_only_their_intersection_from_the_original() -> None:
    personal = _personal(Scope(namespaces=("a",), users=("alice",)))
    plan = _plan(_config(), personal)
    [change] = plan.changes
    assert change.path[-1] == "matchConditions"
    expression = change.after["expression"]
    assert expression == (
        '!((request.namespace in ["a"]) && ((request.userInfo.username in ["alice"])))'
    )


def test_restore_removes_our_exclusion_and_keeps_a_third_partys_edits() -> None:
    config = _config()
    plan = _plan(config, _personal(Scope(namespaces=("a",))))
    during = apply_changes(config, plan.changes)
    # Meanwhile a teammate edits the original: a new rule, a new expression, a timeout.
    edited = copy.deepcopy(during)
    entry = edited["webhooks"][0]
    entry["rules"].append({**entry["rules"][0], "resources": ["configmaps"]})
    entry["namespaceSelector"]["matchExpressions"].insert(0, {"key": "team", "operator": "Exists"})
    entry["timeoutSeconds"] = 3
    restored, results = restore_changes(edited, plan.changes)
    assert [r.outcome for r in results] == [Outcome.RESTORED]
    expected = copy.deepcopy(config)
    expected_entry = expected["webhooks"][0]
    expected_entry["rules"].append({**expected_entry["rules"][0], "resources": ["configmaps"]})
    expected_entry["namespaceSelector"]["matchExpressions"].insert(
        0, {"key": "team", "operator": "Exists"}
    )
    expected_entry["timeoutSeconds"] = 3
    assert restored == expected
    again, results = restore_changes(restored, plan.changes)
    assert again == restored and [r.outcome for r in results] == [Outcome.ALREADY]


def test_restoring_ours_never_disturbs_a_teammates_exclusion_on_the_same_entry() -> None:
    config = _config(matchConditions=[{"name": "theirs", "expression": "true"}])
    alice = _plan(config, _personal(Scope(namespaces=("a",)), "alice"))
    bob = _plan(config, _personal(Scope(namespaces=("b",)), "bob"))
    carol = _plan(config, _personal(Scope(users=("carol",)), "carol"))
    both = apply_changes(
        apply_changes(apply_changes(config, alice.changes), bob.changes), carol.changes
    )
    without_alice, _ = restore_changes(both, alice.changes)
    assert without_alice == apply_changes(apply_changes(config, bob.changes), carol.changes)
    without_carol, _ = restore_changes(without_alice, carol.changes)
    assert without_carol == apply_changes(config, bob.changes)
    original, _ = restore_changes(without_carol, bob.changes)
    assert original == config


def test_restore_puts_an_absent_list_back_to_absent() -> None:
    config = _config()
    del config["webhooks"][0]["namespaceSelector"]
    plan = _plan(config, _personal(Scope(users=("alice",))))
    restored, _ = restore_changes(apply_changes(config, plan.changes), plan.changes)
    assert restored == config


def test_a_copy_leaves_out_a_teammates_exclusion() -> None:
    config = _config()
    bob = _plan(config, _personal(Scope(namespaces=("b",)), "bob"))
    narrowed = apply_changes(config, bob.changes)
    alice = _plan(narrowed, _personal(Scope(namespaces=("a",)), "alice"))
    copied = alice.creates[0].manifest["webhooks"][0]
    values = [e["values"] for e in copied["namespaceSelector"]["matchExpressions"]]
    assert values == [["kube-system"], ["a"]]


def test_the_journal_round_trip_keeps_the_element_change() -> None:
    plan = _plan(_config(), _personal(Scope(namespaces=("a",))))
    assert RedirectPlan.from_json(plan.to_json()) == plan


def test_the_probe_aims_at_the_copy() -> None:
    plan = _plan(_config(), _personal(Scope(namespaces=("a",))))
    snapshot = copy_snapshot(plan)
    assert [str(ref) for ref in snapshot.entries] == [
        "webhook-dev.alice.team-injector/sidecar.example.com"
    ]


def test_scopes_overlap_unless_namespaces_or_users_are_disjoint() -> None:
    assert not Scope(namespaces=("a",)).overlaps(Scope(namespaces=("b",)))
    assert Scope(namespaces=("a", "b")).overlaps(Scope(namespaces=("b",)))
    assert not Scope(users=("alice",)).overlaps(Scope(users=("bob",)))
    assert Scope(users=("alice",)).overlaps(Scope(namespaces=("a",)))
    assert Scope(groups=("devs",)).overlaps(Scope(users=("bob",)))  # bob may be in devs
    assert not Scope(namespaces=("a",), groups=("x",)).overlaps(Scope(namespaces=("b",)))


def test_match_conditions_need_kubernetes_1_30() -> None:
    assert version_allows_match_conditions("1", "30")
    assert version_allows_match_conditions("1", "37+")
    assert not version_allows_match_conditions("1", "29")


def test_other_mutating_configurations_on_the_same_resources_are_named() -> None:
    config = _config()
    other = _config("zz-other")
    unrelated = _config("aa-unrelated")
    unrelated["webhooks"][0]["rules"][0]["resources"] = ["configmaps"]
    configs = {
        (MUTATING, "team-injector"): config,
        (MUTATING, "zz-other"): other,
        (MUTATING, "aa-unrelated"): unrelated,
    }
    warnings = ordering_warnings(configs, _snapshot(config), _personal(Scope(namespaces=("a",))))
    assert len(warnings) == 1
    assert (
        "zz-other" in warnings[0]
        and "after your copy webhook-dev.alice.team-injector" in (warnings[0])
    )
    assert "reinvocationPolicy IfNeeded is copied" in warnings[0]
