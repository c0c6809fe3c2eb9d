"""``up --relay`` on the lab's node: the apiserver calls a relay Pod that really runs (the
lab's own Python image, the program from its ConfigMap), and the workstation reaches the
relay through the apiserver's WebSocket port-forward — no SSH, no route to the laptop.

The webhook intercepts Pods of a second namespace, not its own: a relay Pod created in a
namespace whose Pods a webhook without a backend intercepts is refused, as it would be
on any cluster (docs/relay.md).
"""

from __future__ import annotations

import base64
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import REPO, RunningProcess, sample_project, stopped_at_exit
from tests.lab.redirect_fixtures import (
    ClusterView,
    RedirectTarget,
    container_names,
    up_process,
)
from tests.polling import wait_until
from webhook_dev.kube.cluster import Cluster
from webhook_dev.lab import Lab
from webhook_dev.tls import certs

pytestmark = pytest.mark.e2e

RELAY_SELECTOR = "app.kubernetes.io/managed-by=webhook-dev,app.kubernetes.io/component=relay"
FAST = {"WEBHOOK_DEV_LEASE_SECONDS": "6"}


def _lab_python_image() -> str:
    from webhook_dev.lab import images  # the node's images (issue 17)

    return images.SAMPLE_IMAGE


@pytest.fixture
def cluster_view(lab_node: Lab) -> ClusterView:
    """The node's cluster: where the relay Pod runs (``lab`` may be a lab without a node)."""
    return ClusterView(Cluster.connect(kubeconfig=str(lab_node.host_kubeconfig)))


@pytest.fixture
def lab_namespace(lab_node_namespace: str) -> str:
    """A fresh namespace in the node's cluster, for the fixtures that ask for one."""
    return lab_node_namespace


@pytest.fixture
def start_relay(lab_node: Lab, state_dir: Path) -> Iterator[Any]:
    with stopped_at_exit() as processes:

        def start(
            target: RedirectTarget,
            *extra: str,
            env: dict[str, str] | None = None,
            cwd: Path = REPO,
        ) -> RunningProcess:
            argv = [
                "up",
                "--service",
                target.subject,
                "--relay",
                "--relay-image",
                _lab_python_image(),
                "--app",
                "sample_webhook.sidecar_injector",
                "--no-record",
                *extra,
            ]
            env = {"WEBHOOK_DEV_STATE_DIR": str(state_dir), **FAST, **(env or {})}
            return processes.add(up_process(lab_node, argv, env, cwd))

        yield start


def relay_pods(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return cluster.list(f"/api/v1/namespaces/{namespace}/pods", label_selector=RELAY_SELECTOR)


def webhook_dev(lab: Lab, state_dir: Path, *argv: str, kubeconfig: Path | None = None) -> Any:
    """webhook-dev from the root namespace: another shell."""
    env = {
        "WEBHOOK_DEV_STATE_DIR": str(state_dir),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(Path.home()),
        "KUBECONFIG": str(kubeconfig or lab.host_kubeconfig),
        "WEBHOOK_DEV_RELAY_STRAY_SECONDS": "0",
    }
    command = [sys.executable, "-m", "webhook_dev", *argv]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_the_apiserver_calls_local_code_through_the_relay_pod(
    lab_node: Lab,
    cluster_view: ClusterView,
    apps_target: RedirectTarget,
    apps_namespace: str,
    start_relay: Any,
    state_dir: Path,
) -> None:
    before = cluster_view.snapshot(apps_target)
    up: RunningProcess = start_relay(apps_target)
    line = up.wait_for(r"relay up: [\d.]+:443 \(Pod ")
    up.wait_for("ready: kube-apiserver → sidecar-injector")
    [pod] = relay_pods(cluster_view.cluster, apps_target.namespace)
    assert pod["status"]["podIP"] in line
    endpoints = cluster_view.cluster.get(
        f"/api/v1/namespaces/{apps_target.namespace}/endpoints/{apps_target.service}"
    )
    assert endpoints["subsets"][0]["addresses"][0]["ip"] == pod["status"]["podIP"]

    created = cluster_view.create_pod(apps_namespace, "relay-0")
    assert container_names(created) == ["app", "nginx-sidecar"]
    shown = webhook_dev(lab_node, state_dir, "status").stdout
    assert f"relay: Pod {apps_target.namespace}/{pod['metadata']['name']}" in shown

    assert up.stop(signal.SIGTERM) == 0, up.output
    assert cluster_view.snapshot(apps_target) == before
    wait_until(
        lambda: not relay_pods(cluster_view.cluster, apps_target.namespace),
        timeout=30,
        what="the relay Pod gone after up stopped",
    )


def test_a_code_edit_under_up_relay_misses_no_call(
    tmp_path: Path,
    cluster_view: ClusterView,
    apps_target: RedirectTarget,
    apps_namespace: str,
    start_relay: Any,
) -> None:
    project = sample_project(tmp_path)
    source = project / "sample_webhook" / "sidecar_injector.py"
    up: RunningProcess = start_relay(apps_target, cwd=project)
    up.wait_for("ready: kube-apiserver")
    injected = []
    for index in range(20):
        if index == 5:
            source.write_text(source.read_text().replace('"nginx-sidecar"', '"edited-sidecar"'))
        pod = cluster_view.create_pod(apps_namespace, f"edit-{index}", dry_run=True)
        injected.append(container_names(pod)[-1])
    assert all(name in ("nginx-sidecar", "edited-sidecar") for name in injected), injected
    assert injected[0] == "nginx-sidecar" and injected[-1] == "edited-sidecar", injected


def test_a_killed_port_forward_reconnects_and_the_next_call_reaches_the_code(
    lab_node: Lab,
    cluster_view: ClusterView,
    apps_target: RedirectTarget,
    apps_namespace: str,
    start_relay: Any,
) -> None:
    up: RunningProcess = start_relay(apps_target)
    up.wait_for("ready: kube-apiserver")
    [pod] = relay_pods(cluster_view.cluster, apps_target.namespace)
    dropped = up.mark()
    # Kill every TCP connection from the workstation to the apiserver: the port-forward's
    # WebSockets among them, as an apiserver restart or an idle timeout would.
    killed = subprocess.run(
        lab_node.workstation_argv(["ss", "-K", "dst", lab_node.master_ip, "dport", "=", "6443"]),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert killed.returncode == 0, killed.stderr
    reconnecting = up.wait_for("relay reconnecting: port-forward", after=dropped, timeout=60)
    up.wait_for(r"relay up: ", after=up.lines.index(reconnecting), timeout=60)
    pod_after = cluster_view.create_pod(apps_namespace, "after-drop", dry_run=True)
    assert container_names(pod_after) == ["app", "nginx-sidecar"]
    [same] = relay_pods(cluster_view.cluster, apps_target.namespace)
    assert same["status"]["podIP"] == pod["status"]["podIP"]


@pytest.mark.parametrize(
    "step",
    # lease, journal-local, journal and shield come before the relay exists (its shield is
    # journaled first, docs/relay.md); carry and later, after.
    ["lease", "journal-local", "journal", "shield", "carry", "Service/sidecar-injector", "ready"],
)
def test_down_from_another_shell_after_kill_9_of_up_relay_restores_and_removes_the_relay(
    step: str,
    lab_node: Lab,
    state_dir: Path,
    cluster_view: ClusterView,
    apps_target: RedirectTarget,
    start_relay: Any,
) -> None:
    before = cluster_view.snapshot(apps_target)
    up: RunningProcess = start_relay(apps_target, env={"WEBHOOK_DEV_FAULT_AFTER": step})
    assert up.wait(180) == -signal.SIGKILL, up.output
    if step in ("carry", "Service/sidecar-injector", "ready"):
        assert relay_pods(cluster_view.cluster, apps_target.namespace)  # left behind
    result = webhook_dev(lab_node, state_dir, "down", "--service", apps_target.subject)
    assert result.returncode == 0, result.stdout + result.stderr
    assert cluster_view.snapshot(apps_target) == before
    wait_until(
        lambda: not relay_pods(cluster_view.cluster, apps_target.namespace),
        timeout=30,
        what="no relay Pod left",
    )


def test_doctor_relay_names_the_missing_rbac_verb(
    lab_node: Lab, redirect_target: RedirectTarget, tmp_path: Path, state_dir: Path
) -> None:
    """carol may do everything up --relay does except port-forward."""
    apps_target = redirect_target
    admin = Cluster.connect(kubeconfig=str(lab_node.host_kubeconfig))
    ca = certs.Issued(lab_node.layout.ca_cert.read_bytes(), lab_node.layout.ca_key.read_bytes())
    user = f"carol-{uuid.uuid4().hex[:6]}"
    issued = certs.new_client_cert(ca, common_name=user, organizations=("webhook-devs",))
    document = yaml.safe_load(lab_node.host_kubeconfig.read_text())
    document["users"] = [
        {
            "name": user,
            "user": {
                "client-certificate-data": base64.b64encode(issued.cert_pem).decode(),
                "client-key-data": base64.b64encode(issued.key_pem).decode(),
            },
        }
    ]
    for context in document["contexts"]:
        context["context"]["user"] = user
    kubeconfig = tmp_path / "carol.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(document))
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    verbs = ["get", "list", "create", "update", "delete"]
    admin.create(
        f"{rbac}/clusterroles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": user},
            "rules": [
                {
                    "apiGroups": ["admissionregistration.k8s.io"],
                    "resources": [
                        "mutatingwebhookconfigurations",
                        "validatingwebhookconfigurations",
                    ],
                    "verbs": verbs,
                },
                {
                    "apiGroups": [""],
                    "resources": ["services", "endpoints", "configmaps", "pods"],
                    "verbs": verbs,
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": verbs,
                },
            ],
        },
    )
    admin.create(
        f"{rbac}/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": user},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": user,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )
    try:
        result = webhook_dev(
            lab_node,
            state_dir,
            "doctor",
            "--service",
            apps_target.subject,
            "--relay",
            kubeconfig=kubeconfig,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 1, output
        assert "✗ RBAC: every verb up --relay needs" in output
        assert re.search(r"may not: create pods/portforward in \S+ \(reach the relay", output)
        assert "get pods/portforward" in output
        assert "create pods " not in output  # what carol may do is not listed
    finally:
        admin.delete(f"{rbac}/clusterrolebindings/{user}")
        admin.delete(f"{rbac}/clusterroles/{user}")
