"""``--relay``'s ConfigMap and Pod in the plan: journaled as adopted creates, left alone by
``up`` (they exist already and the plan names their IP), deleted by ``down`` after
everything else, and only when they are still ours."""

from __future__ import annotations

import copy
from typing import Any

from tests.unit.redirect import test_apply
from tests.unit.redirect.test_apply import BEFORE, TARGET, InMemoryCluster
from webhook_dev.redirect.apply import apply_plan, restore_plan
from webhook_dev.redirect.plan import ObjectCreate, ObjectRef, RedirectPlan
from webhook_dev.redirect.plan_builder import Snapshot, build_plan, entries_for_service
from webhook_dev.tunnel import relay_manifests
from webhook_dev.tunnel.relay_manifests import RelaySpec

Json = dict[str, Any]
# test_apply names objects by collection; teach it the relay's two.
test_apply.KINDS.update({"pods": "Pod", "configmaps": "ConfigMap"})

SPEC = RelaySpec(namespace="hooks", relay_id="abc123", subject="hooks/sidecar")
CORE = "/api/v1/namespaces/hooks"


def _relay_objects() -> list[Json]:
    return [
        relay_manifests.config_map(SPEC, "print('relay')"),
        relay_manifests.pod(SPEC, "uid-1"),
    ]


def _plan() -> RedirectPlan:
    configs = {(c["kind"], c["metadata"]["name"]): c for c in BEFORE[:2]}
    snapshot = Snapshot(
        configs=configs,
        entries=entries_for_service(configs, "hooks", "sidecar"),
        service=BEFORE[2],
        endpoints=BEFORE[3],
        endpoint_slices=[BEFORE[4]],
    )
    plan = build_plan(snapshot, TARGET)
    config_map, pod = _relay_objects()
    plan.creates[:0] = [
        ObjectCreate(ObjectRef("ConfigMap", f"{CORE}/configmaps", SPEC.name), config_map, True),
        ObjectCreate(ObjectRef("Pod", f"{CORE}/pods", SPEC.name), pod, True),
    ]
    return plan


def _cluster_with_relay() -> InMemoryCluster:
    cluster = InMemoryCluster(copy.deepcopy(BEFORE))
    for obj in _relay_objects():
        running = copy.deepcopy(obj)
        if obj["kind"] == "Pod":  # what the kubelet and scheduler add
            running["spec"]["nodeName"] = "node-1"
            running["status"] = {"phase": "Running", "podIP": "10.244.0.9"}
        cluster.objects[f"{CORE}/{obj['kind'].lower()}s/{SPEC.name}"] = running
    return cluster


def test_adopted_creates_survive_the_journal() -> None:
    plan = _plan()
    again = RedirectPlan.from_json(plan.to_json())
    assert [c.adopt for c in again.creates] == [c.adopt for c in plan.creates]
    assert again.creates[0].adopt and again.creates[1].adopt


def test_up_leaves_the_relay_as_it_is_and_down_deletes_it_last() -> None:
    cluster = _cluster_with_relay()
    pod_before = copy.deepcopy(cluster.objects[f"{CORE}/pods/{SPEC.name}"])
    plan = _plan()
    apply_plan(cluster, plan, lambda step: None)
    assert not [w for w in cluster.writes if "Pod/" in w or "ConfigMap/" in w]
    assert cluster.objects[f"{CORE}/pods/{SPEC.name}"] == pod_before
    cluster.writes.clear()
    report = restore_plan(cluster, plan, lambda step: None)
    assert report.clean
    assert cluster.writes[-2:] == [
        f"DELETE Pod/{SPEC.name}",
        f"DELETE ConfigMap/{SPEC.name}",
    ]
    assert f"{CORE}/pods/{SPEC.name}" not in cluster.objects
    assert test_apply.short(f"{CORE}/pods/x") == "Pod/x"


def test_down_after_the_relay_is_gone_reports_it_already_gone() -> None:
    cluster = _cluster_with_relay()
    plan = _plan()
    apply_plan(cluster, plan, lambda step: None)
    del cluster.objects[f"{CORE}/pods/{SPEC.name}"]  # exited and collected, or deleted
    report = restore_plan(cluster, plan, lambda step: None)
    assert report.clean
    assert any("Pod" in line and "gone" in line for line in report.already)


def test_a_pod_of_that_name_that_is_not_our_relay_is_left_alone() -> None:
    cluster = _cluster_with_relay()
    plan = _plan()
    apply_plan(cluster, plan, lambda step: None)
    cluster.edit(f"Pod/{SPEC.name}", lambda pod: pod["metadata"]["labels"].clear())
    report = restore_plan(cluster, plan, lambda step: None)
    assert f"{CORE}/pods/{SPEC.name}" in cluster.objects
    assert any("Pod" in line for line in report.conflicts)


def test_the_relay_pod_is_restricted_unless_host_network_on_a_low_port() -> None:
    pod = relay_manifests.pod(SPEC)
    container = pod["spec"]["containers"][0]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["sysctls"] == [
        {"name": "net.ipv4.ip_unprivileged_port_start", "value": "443"}
    ]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["spec"]["automountServiceAccountToken"] is False
    high = relay_manifests.pod(RelaySpec("hooks", "x", port=8443))
    assert "sysctls" not in high["spec"]["securityContext"]
    host = relay_manifests.pod(RelaySpec("hooks", "x", host_network=True))
    assert host["spec"]["hostNetwork"] is True
    assert host["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] == [
        "NET_BIND_SERVICE"
    ]
    assert "sysctls" not in host["spec"]["securityContext"]
