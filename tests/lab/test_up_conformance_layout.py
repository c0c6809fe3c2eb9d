"""``up`` on the layout of Kubernetes' own webhook conformance tests (test/e2e/apimachinery/
webhook.go): the webhook's Service lives in the very namespace whose ConfigMaps its webhooks
intercept, and its in-cluster backend is absent.

Every write of webhook-dev's own bookkeeping there (a ConfigMap journal, a Lease) would be
sent to that webhook and time out; the session's record is a webhook configuration, which
the apiserver never sends to webhooks, so ``up`` starts, and ``down`` after ``kill -9``
restores exactly.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.redirect_fixtures import (
    WEBHOOK_API,
    ClusterView,
    RedirectTarget,
    wait_for_controller_slice,
)
from webhook_dev.lab import Lab

pytestmark = pytest.mark.e2e

SERVICE = "e2e-test-webhook"


def _intercepting_everything(namespace: str) -> RedirectTarget:
    return RedirectTarget(
        namespace,
        SERVICE,
        f"wd-conformance-{namespace}",
        "deny-configmaps.webhook-dev.io",
        kind="validating",
    )


@pytest.fixture
def conformance_layout(cluster_view: ClusterView, lab_namespace: str) -> Iterator[RedirectTarget]:
    """A Service with no backend, and webhooks on its own namespace's ConfigMaps and on
    everything namespaced there (a policy engine's ``*``), both failurePolicy Fail.

    ``*`` is limited to ``scope: Namespaced``: cluster-scoped objects ignore a
    namespaceSelector, and intercepting them (a Service's IPAddress, say) would stop the
    whole lab, not only this namespace.
    """
    target = _intercepting_everything(lab_namespace)
    cluster = cluster_view.cluster
    cluster.create(
        f"/api/v1/namespaces/{lab_namespace}/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": lab_namespace},
            "spec": {
                "selector": {"app": "sample-webhook"},  # no Pod has it: the backend is absent
                "ports": [{"name": "https", "port": 443, "targetPort": 8443}],
            },
        },
    )

    # The controller makes its (empty) slice before the webhooks would refuse it.
    wait_for_controller_slice(cluster, lab_namespace, SERVICE)

    def entry(name: str, rule: dict[str, object]) -> dict[str, object]:
        return {
            "name": name,
            "clientConfig": {
                "service": {
                    "namespace": lab_namespace,
                    "name": SERVICE,
                    "path": "/validate",
                    "port": 443,
                }
            },
            "rules": [{**rule, "operations": ["CREATE", "UPDATE", "DELETE"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": lab_namespace}},
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }

    cluster.create(
        f"{WEBHOOK_API}/validatingwebhookconfigurations",
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": target.config},
            "webhooks": [
                entry(
                    target.entry,
                    {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]},
                ),
                entry(
                    "everything.webhook-dev.io",
                    {
                        "apiGroups": ["*"],
                        "apiVersions": ["*"],
                        "resources": ["*"],
                        "scope": "Namespaced",
                    },
                ),
            ],
        },
    )
    try:
        yield target
    finally:
        cluster.delete(target.config_path)


def test_up_starts_and_down_restores_when_the_webhook_intercepts_its_own_namespace(
    lab: Lab,
    state_dir: Path,
    cluster_view: ClusterView,
    conformance_layout: RedirectTarget,
    start_up: object,
) -> None:
    target = conformance_layout
    before = cluster_view.snapshot(target)
    up = start_up(target, app="sample_webhook.require_limits")  # type: ignore[operator]
    # The probe dry-runs a ConfigMap in the namespace; ready means it reached local code.
    up.wait_for("ready: kube-apiserver")
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "through-the-tunnel", "namespace": target.namespace},
        "data": {"answer": "42"},
    }
    created = cluster_view.cluster.create(
        f"/api/v1/namespaces/{target.namespace}/configmaps", configmap
    )
    assert created["data"] == {"answer": "42"}
    assert cluster_view.snapshot(target)["record"] is not None  # journal and lock exist

    up.stop(signal.SIGKILL)
    # down from another shell and another state directory: the cluster's record alone.
    elsewhere = state_dir.parent / "elsewhere"
    down = _down(lab, elsewhere, target)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "0 conflicts" in down.stderr
    assert cluster_view.snapshot(target) == before

    again = _down(lab, elsewhere, target)
    assert again.returncode == 0 and "nothing to restore" in again.stderr


def _down(lab: Lab, state_dir: Path, target: RedirectTarget) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook_dev", "down", "--service", target.subject],
        env={
            "WEBHOOK_DEV_STATE_DIR": str(state_dir),
            "KUBECONFIG": str(lab.host_kubeconfig),
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(Path.home()),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
