"""``up --relay`` where the webhook intercepts the relay itself (issue 23, finding 1).

The conformance layout (Kubernetes' own webhook e2e tests): the webhook's Service lives
in the very namespace whose Pods and ConfigMaps it intercepts, with ``failurePolicy:
Fail``. The relay's ConfigMap and Pod go to that namespace, so without the shield (an
``objectSelector`` exclusion journaled before the relay exists, docs/relay.md) they are
refused while the backend is absent, injected into by a live sidecar injector, and denied
by a live policy webhook (the relay sets no CPU limit). With it the relay starts
untouched, calls reach local code, and ``down`` after ``kill -9`` leaves the cluster as
it was, with no relay Pod.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import REPO, RunningProcess, stopped_at_exit
from tests.lab.redirect_fixtures import (
    WEBHOOK_API,
    ClusterView,
    RedirectTarget,
    container_names,
    up_process,
    wait_for_controller_slice,
)
from tests.lab.test_up_relay import FAST, relay_pods, webhook_dev
from tests.polling import wait_until
from webhook_dev.kube.cluster import Cluster
from webhook_dev.lab import Lab, images
from webhook_dev.lab.workloads import DeployedSample

pytestmark = pytest.mark.e2e

SERVICE = "e2e-test-webhook"
ENTRY = "pods-and-configmaps.webhook-dev.io"
OWN_NAMESPACE_RULES = [
    {
        "operations": ["CREATE", "UPDATE", "DELETE"],
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["pods", "configmaps"],
    }
]

StartUp = Callable[[RedirectTarget, str], RunningProcess]


@pytest.fixture
def cluster_view(lab_node: Lab) -> ClusterView:
    return ClusterView(Cluster.connect(kubeconfig=str(lab_node.host_kubeconfig)))


@pytest.fixture
def start_up(lab_node: Lab, state_dir: Path) -> Iterator[StartUp]:
    with stopped_at_exit() as processes:

        def start(target: RedirectTarget, app: str) -> RunningProcess:
            argv = ["up", "--service", target.subject, "--relay"]
            argv += ["--relay-image", images.SAMPLE_IMAGE, "--app", app, "--no-record"]
            env = {"WEBHOOK_DEV_STATE_DIR": str(state_dir), **FAST}
            return processes.add(up_process(lab_node, argv, env, REPO))

        yield start


def _intercept_own_namespace(config: dict[str, Any], namespace: str) -> dict[str, Any]:
    for entry in config["webhooks"]:
        entry["rules"] = OWN_NAMESPACE_RULES
        entry["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
        entry["objectSelector"] = {}
        entry["failurePolicy"] = "Fail"
    return config


@pytest.fixture
def absent_backend(cluster_view: ClusterView, lab_node_namespace: str) -> Iterator[RedirectTarget]:
    """A Service with no Pod behind it and a mutating webhook on its own namespace's Pods
    and ConfigMaps, failurePolicy Fail."""
    namespace = lab_node_namespace
    cluster = cluster_view.cluster
    cluster.create(
        f"/api/v1/namespaces/{namespace}/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": namespace},
            "spec": {
                "selector": {"app": "absent"},
                "ports": [{"name": "https", "port": 443, "targetPort": 8443}],
            },
        },
    )
    wait_for_controller_slice(cluster, namespace, SERVICE)
    target = RedirectTarget(namespace, SERVICE, f"wd-shield-{namespace}", ENTRY)
    entry = {
        "name": ENTRY,
        "clientConfig": {
            "service": {"namespace": namespace, "name": SERVICE, "path": "/mutate", "port": 443}
        },
        "timeoutSeconds": 10,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": target.config},
        "webhooks": [entry],
    }
    cluster.create(
        f"{WEBHOOK_API}/mutatingwebhookconfigurations", _intercept_own_namespace(config, namespace)
    )
    try:
        yield target
    finally:
        cluster.delete(target.config_path)


def _kill_then_down(
    up: RunningProcess, lab: Lab, state_dir: Path, view: ClusterView, target: RedirectTarget
) -> None:
    up.stop(signal.SIGKILL)
    result = webhook_dev(lab, state_dir, "down", "--service", target.subject)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 conflicts" in result.stderr, result.stderr
    wait_until(
        lambda: not relay_pods(view.cluster, target.namespace),
        timeout=30,
        what="no relay Pod left",
    )


def test_up_relay_starts_where_its_webhook_intercepts_pods_of_its_own_namespace_with_no_backend(
    lab_node: Lab,
    state_dir: Path,
    cluster_view: ClusterView,
    absent_backend: RedirectTarget,
    start_up: StartUp,
) -> None:
    target = absent_backend
    before = cluster_view.snapshot(target)
    up = start_up(target, "sample_webhook.sidecar_injector")
    up.wait_for("ready: kube-apiserver", timeout=180)
    [relay] = relay_pods(cluster_view.cluster, target.namespace)
    assert container_names(relay) == ["relay"]
    pod = cluster_view.create_pod(target.namespace, "through-the-relay", dry_run=True)
    assert container_names(pod) == ["app", "nginx-sidecar"]  # local code answered
    up.wait_for(f"Pod {target.namespace}/through-the-relay  CREATE  allowed")

    _kill_then_down(up, lab_node, state_dir, cluster_view, target)
    assert cluster_view.snapshot(target) == before


@pytest.fixture
def live_backend(
    request: pytest.FixtureRequest, lab_node: Lab, cluster_view: ClusterView
) -> Iterator[tuple[DeployedSample, RedirectTarget]]:
    """The sample's own in-cluster Deployment, its webhook turned on its own namespace."""
    deployed = lab_node.deploy_sample(request.param)
    kind = "mutating" if deployed.webhook_kind.startswith("Mutating") else "validating"
    config = cluster_view.cluster.get(
        f"{WEBHOOK_API}/{kind}webhookconfigurations/{deployed.webhook_configuration}"
    )
    target = RedirectTarget(
        deployed.namespace,
        deployed.service,
        deployed.webhook_configuration,
        config["webhooks"][0]["name"],
        kind=kind,
    )
    cluster_view.cluster.update(
        target.config_path, lambda current: _intercept_own_namespace(current, deployed.namespace)
    )
    try:
        yield deployed, target
    finally:
        lab_node.delete_sample(deployed)


@pytest.mark.parametrize(
    ("live_backend", "app", "expected"),
    [
        ("sidecar-injector", "sample_webhook.sidecar_injector", "allowed"),
        ("require-limits", "sample_webhook.require_limits", "denied"),
    ],
    indirect=["live_backend"],
)
def test_a_live_backend_that_injects_or_denies_pods_never_sees_the_relay(
    lab_node: Lab,
    state_dir: Path,
    cluster_view: ClusterView,
    live_backend: tuple[DeployedSample, RedirectTarget],
    start_up: StartUp,
    app: str,
    expected: str,
) -> None:
    deployed, target = live_backend
    before = cluster_view.snapshot(target)
    up = start_up(target, app)
    up.wait_for("ready: kube-apiserver", timeout=180)
    [relay] = relay_pods(cluster_view.cluster, target.namespace)
    assert container_names(relay) == ["relay"]  # not injected, not denied
    try:
        cluster_view.create_pod(target.namespace, "through-the-relay", dry_run=True)
    except Exception as error:  # require-limits: denied by the local code
        assert "has no resources.limits" in str(error), error
    up.wait_for(rf"Pod {target.namespace}/through-the-relay  CREATE  {expected}")

    _kill_then_down(up, lab_node, state_dir, cluster_view, target)
    assert cluster_view.snapshot(target) == before
    assert deployed.namespace == target.namespace
