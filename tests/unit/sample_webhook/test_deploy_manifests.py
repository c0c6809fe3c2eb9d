"""The samples' manifests hold what a real cluster needs (checked offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[3] / "sample_webhook" / "deploy"
MANIFESTS = sorted(DEPLOY.glob("*.yaml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_each_webhook_configuration_is_explicit_and_points_at_a_named_service_port(
    path: Path,
) -> None:
    docs = documents(path)
    services = {
        (d["metadata"]["namespace"], d["metadata"]["name"]): d
        for d in docs
        if d["kind"] == "Service"
    }
    configs = [d for d in docs if d["kind"].endswith("WebhookConfiguration")]
    assert configs and all(d["apiVersion"] == "admissionregistration.k8s.io/v1" for d in configs)
    for webhook in (w for config in configs for w in config["webhooks"]):
        assert webhook["sideEffects"] == "None"
        assert webhook["admissionReviewVersions"] == ["v1"]
        assert isinstance(webhook["timeoutSeconds"], int)
        assert webhook["failurePolicy"] in ("Ignore", "Fail")
        assert webhook["namespaceSelector"]["matchLabels"]
        service = webhook["clientConfig"]["service"]
        target = services[(service["namespace"], service["name"])]
        ports = {p["port"]: p for p in target["spec"]["ports"]}
        assert ports[service["port"]]["name"] == "https"
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    container_ports = {
        p["name"]
        for d in deployments
        for c in d["spec"]["template"]["spec"]["containers"]
        for p in c["ports"]
    }
    assert "https" in container_ports


def test_the_sidecar_namespace_is_labelled_for_injection_and_has_the_configmap() -> None:
    docs = documents(DEPLOY / "sidecar-injector.yaml")
    labelled = [
        d
        for d in docs
        if d["kind"] == "Namespace"
        and d["metadata"].get("labels", {}).get("sidecar-inject") == "enabled"
    ]
    assert labelled
    namespace = labelled[0]["metadata"]["name"]
    assert any(
        d["kind"] == "ConfigMap"
        and d["metadata"]["name"] == "nginx-sidecar-config"
        and d["metadata"]["namespace"] == namespace
        for d in docs
    )
