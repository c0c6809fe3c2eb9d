"""``up`` and ``down`` with the webhook's real in-cluster replica serving on the lab's node.

The sidecar injector sample's own Deployment runs on the node (``lab_node.deploy_sample``)
and logs every call it answers (aiohttp's access log, read through the apiserver as
``kubectl logs`` does). While ``up`` redirects its Service the replica gets no call; after
``down`` it gets them again. A call that reached the replica would still be mutated (the
replica injects the same sidecar), so the replica's log, not the Pod, says where it went.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.harness import REPO, RunningProcess, stopped_at_exit
from tests.lab.redirect_fixtures import ClusterView, RedirectTarget, container_names, up_process
from tests.polling import wait_until
from webhook_dev.kube.cluster import Cluster
from webhook_dev.lab import Lab
from webhook_dev.lab.images import NGINX_IMAGE, PAUSE_IMAGE
from webhook_dev.lab.workloads import DeployedSample

pytestmark = pytest.mark.e2e

INJECTED_NAMESPACE = "sidecar-demo"  # labelled sidecar-inject: enabled by the sample's manifest
ACCESS_LOG_CALL = '"POST /mutate'


@pytest.fixture
def sidecar_in_cluster(lab_node: Lab) -> Iterator[DeployedSample]:
    deployed = lab_node.deploy_sample("sidecar-injector")
    try:
        yield deployed
    finally:
        lab_node.delete_sample(deployed)


@pytest.fixture
def node_view(lab_node: Lab) -> ClusterView:
    return ClusterView(Cluster.connect(kubeconfig=str(lab_node.host_kubeconfig)))


@pytest.fixture
def start_up_on_node(
    lab_node: Lab, state_dir: Any, sidecar_in_cluster: DeployedSample
) -> Iterator[Callable[[RedirectTarget], RunningProcess]]:
    """``up`` on the node lab's workstation; stopped (cluster restored) before the sample
    is deleted."""
    with stopped_at_exit() as processes:

        def start(target: RedirectTarget) -> RunningProcess:
            argv = ["up", "--service", target.subject, "--ssh", lab_node.ssh_destination]
            argv += ["--app", "sample_webhook.sidecar_injector", "--no-record"]
            env = {"WEBHOOK_DEV_STATE_DIR": str(state_dir), "SIDECAR_IMAGE": NGINX_IMAGE}
            return processes.add(up_process(lab_node, argv, env, REPO))

        yield start


class Replica:
    """The Deployment's one Pod, and how many calls its access log shows."""

    def __init__(self, lab: Lab, deployed: DeployedSample) -> None:
        self.core = client.CoreV1Api(lab.api_client())
        self.namespace = deployed.namespace
        [pod] = self.core.list_namespaced_pod(
            deployed.namespace, label_selector=f"app={deployed.deployment}"
        ).items
        self.name = pod.metadata.name
        self.address = f"{pod.status.pod_ip}:8443"

    def calls(self) -> int:
        log = self.core.read_namespaced_pod_log(self.name, self.namespace, container="webhook")
        return sum(1 for line in log.splitlines() if ACCESS_LOG_CALL in line)

    def wait_calls(self, expected: int) -> int:
        """The log reaches the apiserver through containerd's log file and the kubelet: let
        it catch up with a call the apiserver has already had answered."""
        wait_until(
            lambda: self.calls() == expected,
            timeout=10,
            what=f"{expected} calls in the replica's log",
            details=lambda: f"it shows {self.calls()}",
        )
        return expected


def create_pod(cluster: Cluster, name: str, *, dry_run: bool = False) -> dict[str, Any]:
    """A Pod of the node's own image in the namespace the sample injects into."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "app", "image": PAUSE_IMAGE, "imagePullPolicy": "Never"}],
            "terminationGracePeriodSeconds": 1,
        },
    }
    path = f"/api/v1/namespaces/{INJECTED_NAMESPACE}/pods"
    return cluster.create(path, manifest, dry_run=dry_run)


def test_ready_in_cluster_pods_get_no_calls_while_redirected_and_come_back_after(
    lab_node: Lab,
    sidecar_in_cluster: DeployedSample,
    node_view: ClusterView,
    start_up_on_node: Callable[[RedirectTarget], RunningProcess],
) -> None:
    """Without its selector the Service keeps the controller's slice (it lingers): up must
    empty it, or kube-proxy balances calls between the in-cluster Pod and the tunnel."""
    started = time.monotonic()
    deployed = sidecar_in_cluster
    target = RedirectTarget(
        deployed.namespace,
        deployed.service,
        deployed.webhook_configuration,
        "sidecar-injector.webhook-dev.example.com",
    )
    replica = Replica(lab_node, deployed)
    wait_until(
        lambda: any(node_view.snapshot(target)["controller_slices"].values()),
        timeout=30,
        interval=0.2,
        what="the controller's EndpointSlice lists the in-cluster Pod",
    )
    wait_until(
        lambda: (
            lab_node.proxy_destinations(deployed.namespace, deployed.service) == [replica.address]
        ),
        timeout=30,
        what="kube-proxy routes the Service to the in-cluster replica",
    )
    # The replica serves, and its log counts what it answers.
    calls_before = replica.calls()
    pod = create_pod(node_view.cluster, "before-up")
    assert container_names(pod) == ["app", "nginx-sidecar"]
    calls_before = replica.wait_calls(calls_before + 1)
    before = node_view.snapshot(target)

    up = start_up_on_node(target)
    up.wait_for("ready: kube-apiserver")
    # Until the probe proved the path, its dry runs may still reach the replica (kube-proxy
    # switches asynchronously; up makes the apiserver reconnect if it keeps a connection).
    time.sleep(1)
    calls_at_ready = replica.calls()
    for index in range(8):
        # Dry-run: the webhook is called just the same; the node need not run 8 more Pods.
        pod = create_pod(node_view.cluster, f"client-{index}", dry_run=True)
        assert container_names(pod) == ["app", "nginx-sidecar"], f"call {index} missed the tunnel"
        up.wait_for(f"Pod {INJECTED_NAMESPACE}/client-{index}  CREATE  allowed")
    time.sleep(1)  # a call that went to the replica would be in its log by now
    assert replica.calls() == calls_at_ready, "the in-cluster replica got calls while redirected"

    assert up.stop(signal.SIGTERM) == 0, up.output
    assert node_view.snapshot(target) == before

    # After down the controllers route the Service to the replica again, and it answers.
    wait_until(
        lambda: (
            lab_node.proxy_destinations(deployed.namespace, deployed.service) == [replica.address]
        ),
        timeout=30,
        what="kube-proxy routes the Service to the in-cluster replica again",
    )
    pod = create_pod(node_view.cluster, "after-down")
    assert container_names(pod) == ["app", "nginx-sidecar"]
    assert pod["metadata"]["annotations"]["sidecar-injector/injected"] == "true"
    replica.wait_calls(calls_at_ready + 1)
    print(f"replica calls: {calls_before} before up, {calls_at_ready} at ready")
    print("\n".join(line for line in up.lines if "probe" in line or "ready" in line))
    print(f"replica test: {time.monotonic() - started:.1f}s (after the sample was deployed)")
