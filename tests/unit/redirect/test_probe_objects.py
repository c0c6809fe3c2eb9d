"""Choosing the dry-run object that proves the apiserver reaches the local code."""

from __future__ import annotations

from typing import Any

from webhook_dev.redirect.probe_objects import (
    excludes_system_namespaces,
    labels_satisfying,
    probe_object,
    selector_matches,
)

POD_RULE = {
    "apiGroups": [""],
    "apiVersions": ["v1"],
    "operations": ["CREATE"],
    "resources": ["pods"],
}


def _ns(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


NAMESPACES = [_ns("default"), _ns("kube-system"), _ns("shop", **{"sidecar-inject": "enabled"})]


def test_probe_is_a_pod_in_a_namespace_the_selector_matches() -> None:
    entry = {
        "rules": [POD_RULE],
        "namespaceSelector": {"matchLabels": {"sidecar-inject": "enabled"}},
    }
    probe = probe_object(entry, NAMESPACES)
    assert probe is not None
    assert probe.collection == "/api/v1/namespaces/shop/pods"
    assert probe.manifest["kind"] == "Pod" and probe.name.startswith("webhook-dev-probe-")


def test_probe_prefers_default_to_system_namespaces() -> None:
    probe = probe_object({"rules": [POD_RULE]}, NAMESPACES)
    assert probe is not None and probe.manifest["metadata"]["namespace"] == "default"


def test_probe_carries_labels_the_object_selector_wants() -> None:
    entry = {
        "rules": [POD_RULE],
        "objectSelector": {
            "matchLabels": {"app": "x"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "db"]}],
        },
    }
    probe = probe_object(entry, NAMESPACES)
    assert probe is not None
    assert probe.manifest["metadata"]["labels"] == {"app": "x", "tier": "web"}


def test_no_probe_for_update_only_rules_or_unknown_resources() -> None:
    assert probe_object({"rules": [dict(POD_RULE, operations=["UPDATE"])]}, NAMESPACES) is None
    assert probe_object({"rules": [dict(POD_RULE, resources=["widgets"])]}, NAMESPACES) is None


def test_deployments_are_posted_to_the_apps_group() -> None:
    rule = {
        "apiGroups": ["apps"],
        "apiVersions": ["v1"],
        "operations": ["*"],
        "resources": ["deployments"],
    }
    probe = probe_object({"rules": [rule]}, NAMESPACES)
    assert probe is not None and probe.collection == "/apis/apps/v1/namespaces/default/deployments"


def test_selector_operators() -> None:
    selector = {
        "matchExpressions": [
            {"key": "a", "operator": "NotIn", "values": ["x"]},
            {"key": "b", "operator": "Exists"},
            {"key": "c", "operator": "DoesNotExist"},
        ]
    }
    assert selector_matches(selector, {"a": "y", "b": "1"})
    assert not selector_matches(selector, {"a": "x", "b": "1"})
    assert not selector_matches(selector, {"b": "1", "c": "1"})
    assert labels_satisfying({"matchExpressions": [{"key": "c", "operator": "DoesNotExist"}]}) == {}


def test_an_entry_without_namespace_selector_does_not_exclude_kube_system() -> None:
    assert not excludes_system_namespaces({})
    assert excludes_system_namespaces(
        {
            "namespaceSelector": {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "NotIn",
                        "values": ["kube-system"],
                    }
                ]
            }
        }
    )
    assert excludes_system_namespaces(
        {"namespaceSelector": {"matchLabels": {"sidecar-inject": "enabled"}}}
    )
