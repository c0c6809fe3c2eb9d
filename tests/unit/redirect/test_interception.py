"""The relay's shield and ``doctor --relay``'s list: which entries a CREATE of the relay's
objects reaches, as the apiserver matches them; the shield applied before the relay
exists and restored only once it is gone (issue 23, finding 1)."""

from __future__ import annotations

import copy
from typing import Any

from tests.unit.redirect import test_relay_plan
from tests.unit.redirect.test_apply import BEFORE, MUTATING_CONFIG, InMemoryCluster
from tests.unit.redirect.test_relay_plan import CORE, SPEC, _cluster_with_relay
from webhook_dev.redirect.apply import apply_plan, restore_plan
from webhook_dev.redirect.interception import Created, interceptors, shield_changes
from webhook_dev.redirect.plan import RedirectPlan
from webhook_dev.redirect.plan_builder import MUTATING, VALIDATING, Snapshot, entries_for_service
from webhook_dev.redirect.probe_objects import selector_matches
from webhook_dev.tunnel import relay_manifests

Json = dict[str, Any]
RELAY_LABELS = relay_manifests.labels(SPEC)
POD = Created("pods", "hooks", RELAY_LABELS)
CONFIG_MAP = Created("configmaps", "hooks", RELAY_LABELS)
PODS_RULE = {
    "operations": ["CREATE", "UPDATE"],
    "apiGroups": [""],
    "apiVersions": ["v1"],
    "resources": ["pods"],
}


def _with_rules(config: Json, rules: list[Json], **entry: Any) -> Json:
    changed = copy.deepcopy(config)
    changed["webhooks"][0].update(rules=rules, **entry)
    return changed


def _snapshot(configs: list[Json]) -> Snapshot:
    by_name = {(c["kind"], c["metadata"]["name"]): c for c in configs}
    return Snapshot(
        configs=by_name,
        entries=entries_for_service(by_name, "hooks", "sidecar"),
        service=BEFORE[2],
        endpoints=BEFORE[3],
        endpoint_slices=[BEFORE[4]],
    )


def test_only_entries_whose_rules_reach_the_relays_objects_are_shielded() -> None:
    pods = _with_rules(MUTATING_CONFIG, [PODS_RULE])
    deployments = _with_rules(
        BEFORE[1], [{**PODS_RULE, "apiGroups": ["apps"], "resources": ["deployments"]}]
    )
    changes = shield_changes(_snapshot([pods, deployments]), [POD, CONFIG_MAP], "webhook-dev/relay")
    assert [(c.ref.name, c.after) for c in changes] == [
        ("sidecar-mutate", {"key": "webhook-dev/relay", "operator": "DoesNotExist"})
    ]


def test_selectors_match_as_the_apiserver_matches_them() -> None:
    labels = {"app": "web", "tier": "front"}
    assert selector_matches(None, labels) and selector_matches({}, labels)
    assert selector_matches({"matchLabels": {"app": "web"}}, labels)
    assert not selector_matches({"matchLabels": {"app": "db"}}, labels)
    expression = {"key": "tier", "operator": "In", "values": ["front"]}
    assert selector_matches({"matchExpressions": [expression]}, labels)
    assert not selector_matches(
        {"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, labels
    )
    assert selector_matches({"matchExpressions": [{"key": "x", "operator": "NotIn"}]}, labels)


def test_doctor_names_other_webhooks_that_would_see_the_relay() -> None:
    injector = _with_rules({**MUTATING_CONFIG, "metadata": {"name": "istio-injector"}}, [PODS_RULE])
    injector["webhooks"][0]["name"] = "inject.istio.io"
    opted_out = _with_rules(
        {**BEFORE[1], "metadata": {"name": "policy"}},
        [PODS_RULE],
        namespaceSelector={"matchLabels": {"policy": "on"}},
    )
    configs = {
        (MUTATING, "istio-injector"): injector,
        (VALIDATING, "policy"): opted_out,
    }
    found = interceptors(configs, [POD, CONFIG_MAP], {"kubernetes.io/metadata.name": "hooks"})
    assert [item.describe() for item in found] == [
        "mutating webhook istio-injector/inject.istio.io intercepts pods in hooks: "
        "may change it, blocks it while its backend is down (failurePolicy Fail)"
    ]


def test_the_shield_goes_on_with_the_redirect_and_comes_off_after_the_relay_is_gone() -> None:
    pods = _with_rules(MUTATING_CONFIG, [PODS_RULE])
    cluster = _cluster_with_relay()
    cluster.objects["/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
                    "sidecar-mutate"] = InMemoryCluster([pods]).objects[
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/sidecar-mutate"
    ]  # fmt: skip
    before = cluster.content()
    plan = test_relay_plan._plan()
    shield = shield_changes(_snapshot([pods, BEFORE[1]]), [POD, CONFIG_MAP], "webhook-dev/relay")
    apply_plan(cluster, RedirectPlan(changes=shield), lambda step: None)
    entry = cluster.content()["MutatingWebhookConfiguration/sidecar-mutate"]["webhooks"][0]
    assert entry["objectSelector"]["matchExpressions"] == [
        {"key": "webhook-dev/relay", "operator": "DoesNotExist"}
    ]
    plan.changes[:0] = shield
    apply_plan(cluster, plan, lambda step: None)  # the shield again: no second expression
    entry = cluster.content()["MutatingWebhookConfiguration/sidecar-mutate"]["webhooks"][0]
    assert len(entry["objectSelector"]["matchExpressions"]) == 1
    cluster.writes.clear()
    assert restore_plan(cluster, plan, lambda step: None).clean
    assert cluster.writes[-3:] == [
        f"DELETE Pod/{SPEC.name}",
        f"DELETE ConfigMap/{SPEC.name}",
        "PUT MutatingWebhookConfiguration/sidecar-mutate",
    ]
    after = cluster.content()
    for name in (f"Pod/{SPEC.name}", f"ConfigMap/{SPEC.name}"):
        del before[name]
    restored = after["MutatingWebhookConfiguration/sidecar-mutate"]["webhooks"][0]
    assert restored.get("objectSelector", {}) == {}  # as the apiserver defaults it
    restored.pop("objectSelector", None)
    assert after == before
    assert f"{CORE}/pods/{SPEC.name}" not in cluster.objects
