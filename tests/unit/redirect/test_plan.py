"""The redirect plan and its field-by-field inverse, on fixtures shaped like real objects."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from webhook_dev.errors import PreflightError
from webhook_dev.redirect.plan import (
    ABSENT,
    FieldChange,
    ObjectRef,
    Outcome,
    RedirectPlan,
    apply_changes,
    restore_changes,
)
from webhook_dev.redirect.plan_builder import (
    MUTATING,
    VALIDATING,
    EntryRef,
    Snapshot,
    Target,
    build_plan,
    entries_for_service,
    entries_named,
    tunnel_url,
)
from webhook_dev.tls import certs

THEIR_CA = certs.new_ca("their CA").cert_pem
OUR_CA = certs.new_ca("webhook-dev local CA").cert_pem
B64 = lambda pem: base64.b64encode(pem).decode()  # noqa: E731


def _mutating(name: str = "sidecar", **entry: Any) -> dict[str, Any]:
    webhook = {
        "name": "sidecar.example.com",
        "clientConfig": {
            "service": {"namespace": "hooks", "name": "sidecar", "path": "/mutate", "port": 443},
            "caBundle": B64(THEIR_CA),
        },
        "failurePolicy": "Fail",
        "timeoutSeconds": 10,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    webhook.update(entry)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": MUTATING,
        "metadata": {"name": name, "resourceVersion": "7"},
        "webhooks": [webhook],
    }


SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "sidecar", "namespace": "hooks", "resourceVersion": "3"},
    "spec": {
        "selector": {"app": "sidecar"},
        "clusterIP": "10.0.0.9",
        "ports": [{"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}],
    },
}
ENDPOINTS = {
    "apiVersion": "v1",
    "kind": "Endpoints",
    "metadata": {"name": "sidecar", "namespace": "hooks", "labels": {"app": "sidecar"}},
    "subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"name": "https", "port": 8443}]}],
}
TARGET = Target(master_address="10.77.0.1", tunnel_port=31000, ca_pem=OUR_CA, session_id="s1")


def _snapshot(config: dict[str, Any] | None = None, endpoints: Any = ENDPOINTS) -> Snapshot:
    config = config or _mutating()
    configs = {(config["kind"], config["metadata"]["name"]): config}
    return Snapshot(
        configs=configs,
        entries=entries_for_service(configs, "hooks", "sidecar"),
        service=copy.deepcopy(SERVICE),
        endpoints=copy.deepcopy(endpoints),
    )


def _objects(snapshot: Snapshot) -> dict[str, dict[str, Any]]:
    objects = {f"{kind}/{name}": c for (kind, name), c in snapshot.configs.items()}
    objects["Service/sidecar"] = snapshot.service or {}
    if snapshot.endpoints:
        objects["Endpoints/sidecar"] = snapshot.endpoints
    return objects


def _apply(plan: RedirectPlan, objects: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        key: apply_changes(obj, [c for c in plan.changes if f"{c.ref.kind}/{c.ref.name}" == key])
        for key, obj in objects.items()
    }


def _restore(
    plan: RedirectPlan, objects: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], list[Outcome]]:
    restored, outcomes = {}, []
    for key, obj in objects.items():
        result, results = restore_changes(
            obj, [c for c in plan.changes if f"{c.ref.kind}/{c.ref.name}" == key]
        )
        restored[key] = result
        outcomes += [r.outcome for r in results]
    return restored, outcomes


def test_redirect_points_endpoints_at_the_tunnel_under_the_service_port_name() -> None:
    redirected = _apply(build_plan(_snapshot(), TARGET), _objects(_snapshot()))
    assert redirected["Endpoints/sidecar"]["subsets"] == [
        {
            "addresses": [{"ip": "10.77.0.1"}],
            "ports": [{"port": 31000, "protocol": "TCP", "name": "https"}],
        }
    ]
    assert redirected["Endpoints/sidecar"]["metadata"]["labels"] == {
        "app": "sidecar",
        "endpointslice.kubernetes.io/skip-mirror": "true",
    }
    assert "selector" not in redirected["Service/sidecar"]["spec"]


def test_redirect_appends_our_ca_and_relaxes_failure_policy() -> None:
    redirected = _apply(build_plan(_snapshot(), TARGET), _objects(_snapshot()))
    entry = redirected[f"{MUTATING}/sidecar"]["webhooks"][0]
    bundle = base64.b64decode(entry["clientConfig"]["caBundle"])
    assert certs.bundle_contains(bundle, THEIR_CA) and certs.bundle_contains(bundle, OUR_CA)
    assert (entry["failurePolicy"], entry["timeoutSeconds"]) == ("Ignore", 5)


def test_keep_failure_policy_leaves_policy_and_timeout() -> None:
    target = Target("10.77.0.1", 31000, OUR_CA, "s1", relax_failure_policy=False)
    redirected = _apply(build_plan(_snapshot(), target), _objects(_snapshot()))
    entry = redirected[f"{MUTATING}/sidecar"]["webhooks"][0]
    assert (entry["failurePolicy"], entry["timeoutSeconds"]) == ("Fail", 10)


def test_our_endpointslice_is_labelled_for_its_service_and_managed_by_us() -> None:
    plan = build_plan(_snapshot(), TARGET)
    [endpoint_slice] = [c.manifest for c in plan.creates if c.ref.kind == "EndpointSlice"]
    assert endpoint_slice["metadata"]["labels"] == {
        "kubernetes.io/service-name": "sidecar",
        "endpointslice.kubernetes.io/managed-by": "webhook-dev",
    }
    assert endpoint_slice["endpoints"][0]["addresses"] == ["10.77.0.1"]
    assert endpoint_slice["ports"] == [{"port": 31000, "protocol": "TCP", "name": "https"}]


def test_missing_endpoints_are_created_not_changed() -> None:
    plan = build_plan(_snapshot(endpoints=None), TARGET)
    assert [c.ref.kind for c in plan.creates] == ["Endpoints", "EndpointSlice"]
    assert not [c for c in plan.changes if c.ref.kind == "Endpoints"]


def test_restore_after_redirect_gives_back_byte_equal_objects() -> None:
    snapshot = _snapshot()
    plan = build_plan(snapshot, TARGET)
    original = _objects(snapshot)
    restored, outcomes = _restore(plan, _apply(plan, original))
    assert json.dumps(restored, sort_keys=True) == json.dumps(original, sort_keys=True)
    assert set(outcomes) == {Outcome.RESTORED}


def test_restore_is_idempotent() -> None:
    snapshot = _snapshot()
    plan = build_plan(snapshot, TARGET)
    once, _ = _restore(plan, _apply(plan, _objects(snapshot)))
    twice, outcomes = _restore(plan, once)
    assert twice == once and set(outcomes) == {Outcome.ALREADY}


@pytest.mark.parametrize("applied", range(0, 8))
def test_restore_after_a_partial_redirect_is_exact(applied: int) -> None:
    """A crash after any number of applied changes still restores exactly."""
    snapshot = _snapshot()
    plan = build_plan(snapshot, TARGET)
    original = _objects(snapshot)
    partial = RedirectPlan(changes=plan.changes[:applied])
    restored, outcomes = _restore(plan, _apply(partial, original))
    assert restored == original
    assert Outcome.CONFLICT not in outcomes


def test_a_third_party_change_is_reported_not_overwritten() -> None:
    snapshot = _snapshot()
    plan = build_plan(snapshot, TARGET)
    redirected = _apply(plan, _objects(snapshot))
    redirected[f"{MUTATING}/sidecar"]["webhooks"][0]["timeoutSeconds"] = 20
    restored, outcomes = _restore(plan, redirected)
    assert restored[f"{MUTATING}/sidecar"]["webhooks"][0]["timeoutSeconds"] == 20
    assert outcomes.count(Outcome.CONFLICT) == 1


def test_a_rewritten_ca_bundle_keeps_the_new_ca_and_loses_only_ours() -> None:
    """cert-manager rotated the webhook's CA mid-session and we re-appended ours."""
    snapshot = _snapshot()
    plan = build_plan(snapshot, TARGET)
    redirected = _apply(plan, _objects(snapshot))
    rotated = certs.new_ca("rotated").cert_pem
    entry = redirected[f"{MUTATING}/sidecar"]["webhooks"][0]
    entry["clientConfig"]["caBundle"] = B64(certs.append_to_bundle(rotated, OUR_CA))
    restored, _ = _restore(plan, redirected)
    bundle = restored[f"{MUTATING}/sidecar"]["webhooks"][0]["clientConfig"]["caBundle"]
    assert base64.b64decode(bundle) == rotated


def test_an_entry_without_ca_bundle_gets_it_removed_again() -> None:
    config = _mutating()
    del config["webhooks"][0]["clientConfig"]["caBundle"]
    snapshot = _snapshot(config)
    plan = build_plan(snapshot, TARGET)
    restored, _ = _restore(plan, _apply(plan, _objects(snapshot)))
    assert "caBundle" not in restored[f"{MUTATING}/sidecar"]["webhooks"][0]["clientConfig"]


def test_reordered_entries_are_restored_by_name() -> None:
    config = _mutating()
    config["webhooks"].append(
        dict(config["webhooks"][0], name="other.example.com", failurePolicy="Fail")
    )
    snapshot = _snapshot(config)
    plan = build_plan(snapshot, TARGET)
    redirected = _apply(plan, _objects(snapshot))
    redirected[f"{MUTATING}/sidecar"]["webhooks"].reverse()
    restored, outcomes = _restore(plan, redirected)
    by_name = {e["name"]: e for e in restored[f"{MUTATING}/sidecar"]["webhooks"]}
    assert by_name["sidecar.example.com"]["failurePolicy"] == "Fail"
    assert Outcome.CONFLICT not in outcomes


def test_url_entries_are_pointed_at_the_tunnel_keeping_path_and_query() -> None:
    assert tunnel_url("https://hook.example.com:9443/mutate?x=1", TARGET) == (
        "https://10.77.0.1:31000/mutate?x=1"
    )


def test_plan_survives_the_journal_round_trip() -> None:
    plan = build_plan(_snapshot(), TARGET)
    again = RedirectPlan.from_json(json.loads(json.dumps(plan.to_json())))
    assert again == plan
    assert any(c.after is ABSENT for c in again.changes)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "169.254.1.1", "0.0.0.0", "master"])
def test_master_addresses_the_apiserver_refuses_are_caught_before_any_change(address: str) -> None:
    with pytest.raises(PreflightError, match="master address"):
        build_plan(_snapshot(), Target(address, 31000, OUR_CA, "s1"))


def test_headless_service_is_refused_with_the_reason() -> None:
    snapshot = _snapshot()
    assert snapshot.service is not None
    snapshot.service["spec"]["clusterIP"] = "None"
    with pytest.raises(PreflightError, match="headless"):
        build_plan(snapshot, TARGET)


def test_a_service_without_the_webhook_port_is_refused_naming_its_ports() -> None:
    snapshot = _snapshot(
        _mutating(clientConfig={"service": {"namespace": "hooks", "name": "sidecar", "port": 8443}})
    )
    with pytest.raises(PreflightError, match=r"no port 8443 \(its ports: 443\)"):
        build_plan(snapshot, TARGET)


def test_entries_named_finds_one_entry_or_says_which_exist() -> None:
    configs = {(VALIDATING, "limits"): {"webhooks": [{"name": "a"}, {"name": "b"}]}}
    assert entries_named(configs, "limits", "b") == [EntryRef(VALIDATING, "limits", "b")]
    assert len(entries_named(configs, "limits", None)) == 2
    with pytest.raises(PreflightError, match="its entries are: a, b"):
        entries_named(configs, "limits", "c")


def test_a_value_read_back_as_null_still_counts_as_what_up_wrote() -> None:
    """The apiserver drops empty lists (omitempty): [] written comes back as null."""
    ref = ObjectRef("EndpointSlice", "/apis/discovery.k8s.io/v1/namespaces/a/endpointslices", "s")
    change = FieldChange(ref, ("endpoints",), [{"addresses": ["10.0.0.1"]}], [])
    restored, [result] = restore_changes({"endpoints": None}, [change])
    assert result.outcome is Outcome.RESTORED
    assert restored["endpoints"] == [{"addresses": ["10.0.0.1"]}]


MIRRORING_CONTROLLER = "endpointslicemirroring-controller.k8s.io"


def test_controller_slices_with_pod_endpoints_are_emptied_and_refilled() -> None:
    snapshot = _snapshot()
    pod_endpoints = [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}}]
    snapshot.endpoint_slices = [
        {
            "metadata": {
                "name": "sidecar-abcde",
                "labels": {
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"
                },
            },
            "endpoints": pod_endpoints,
        },
        {
            "metadata": {
                "name": "sidecar-mirrored",
                "labels": {"endpointslice.kubernetes.io/managed-by": MIRRORING_CONTROLLER},
            },
            "endpoints": pod_endpoints,
        },
    ]
    plan = build_plan(snapshot, TARGET)
    [change] = [c for c in plan.changes if c.ref.kind == "EndpointSlice"]
    assert (change.ref.name, change.before, change.after) == ("sidecar-abcde", pod_endpoints, [])
