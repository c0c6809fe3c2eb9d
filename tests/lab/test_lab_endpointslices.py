"""An open question of the design, settled with the real controllers of the pinned release.

When `webhook-dev up` removes a Service's selector and writes manual Endpoints pointing at
the tunnel, what happens to the EndpointSlices the controllers made for the in-cluster
webhook Pods? The "in-cluster Pod" is a real one, scheduled to the lab's node and Ready
there (nginx from the node's own images).

Observed (Kubernetes 1.37.2), and asserted here so an upgrade that changes it fails:
1. Removing the selector leaves the EndpointSlice controller's slice in place (it ignores
   selectorless Services, including for cleanup), and the mirroring controller adds a
   mirror of the now-unmanaged Endpoints (still the Pod's IP).
2. After manual Endpoints → tunnel, kube-proxy balances between the lingering Pod
   endpoint and the tunnel: `up` must delete the controller-managed slice.
3. Deleted, it stays deleted while the selector is absent.
4. Restoring the selector brings the controllers back: the EndpointSlice controller
   recreates its slice, the endpoints controller rewrites Endpoints, the mirror goes.

The answer is recorded in docs/lab.md ("Answers to ... open questions"); the question
is in docs/architecture.md's field notes.
"""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from tests.lab.node_helpers import nginx_pod, wait_running
from tests.polling import wait_until
from webhook_dev.lab import Lab

pytestmark = pytest.mark.e2e

POD_PORT = 80  # the lab's nginx
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"
MIRRORING = "endpointslicemirroring-controller.k8s.io"


def slices_by_manager(api: client.ApiClient, namespace: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for item in client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(namespace).items:
        addresses = [a for e in (item.endpoints or []) for a in e.addresses]
        found.setdefault(item.metadata.labels.get(MANAGED_BY, ""), []).extend(addresses)
    return found


def settle() -> None:
    """Give controllers time to act on a change we expect them to *ignore*."""
    time.sleep(3)


def test_selector_removal_leaves_controller_slices_until_deleted_and_restore_rebuilds(
    lab_node: Lab, lab_node_namespace: str
) -> None:
    lab = lab_node
    lab_api_client = lab.api_client()
    core = client.CoreV1Api(lab_api_client)
    ns = lab_node_namespace
    core.create_namespaced_service(
        ns,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="webhook"),
            spec=client.V1ServiceSpec(
                selector={"app": "webhook"},
                ports=[client.V1ServicePort(name="https", port=443, target_port=POD_PORT)],
            ),
        ),
    )
    core.create_namespaced_pod(ns, nginx_pod("webhook"))  # labelled app: webhook
    pod_ip = wait_running(core, ns, "webhook").status.pod_ip
    in_cluster = f"{pod_ip}:{POD_PORT}"
    tunnel = f"{lab.master_ip}:19443"
    wait_until(
        lambda: lab.proxy_destinations(ns, "webhook") == [in_cluster],
        timeout=20,
        what="kube-proxy routes the Service to the in-cluster Pod",
    )

    # 1. Remove the selector, as `up` does.
    core.patch_namespaced_service("webhook", ns, [{"op": "remove", "path": "/spec/selector"}])
    wait_until(
        lambda: MIRRORING in slices_by_manager(lab_api_client, ns),
        timeout=20,
        what="the mirroring controller mirrors the now-unmanaged Endpoints",
    )
    settle()
    assert slices_by_manager(lab_api_client, ns) == {CONTROLLER: [pod_ip], MIRRORING: [pod_ip]}

    # 2. Manual Endpoints to the tunnel: both endpoints are live behind the ClusterIP.
    core.replace_namespaced_endpoints(
        "webhook",
        ns,
        client.V1Endpoints(
            metadata=client.V1ObjectMeta(name="webhook"),
            subsets=[
                client.V1EndpointSubset(
                    addresses=[client.V1EndpointAddress(ip=lab.master_ip)],
                    ports=[client.CoreV1EndpointPort(name="https", port=19443)],
                )
            ],
        ),
    )
    wait_until(
        lambda: lab.proxy_destinations(ns, "webhook") == sorted([in_cluster, tunnel]),
        timeout=20,
        what="kube-proxy balances between the lingering Pod slice and the tunnel",
    )

    # 3. Deleting the controller's slice is what routes every call to the tunnel.
    discovery = client.DiscoveryV1Api(lab_api_client)
    for item in discovery.list_namespaced_endpoint_slice(
        ns, label_selector=f"{MANAGED_BY}={CONTROLLER}"
    ).items:
        discovery.delete_namespaced_endpoint_slice(item.metadata.name, ns)
    wait_until(
        lambda: lab.proxy_destinations(ns, "webhook") == [tunnel],
        timeout=20,
        what="only the tunnel remains",
    )
    settle()
    assert slices_by_manager(lab_api_client, ns) == {MIRRORING: [lab.master_ip]}

    # 4. Restore the selector, as `down` does: the controllers rebuild everything.
    core.patch_namespaced_service("webhook", ns, {"spec": {"selector": {"app": "webhook"}}})
    wait_until(
        lambda: slices_by_manager(lab_api_client, ns) == {CONTROLLER: [pod_ip]},
        timeout=20,
        what="the controller recreates its slice and the mirror is removed",
    )
    wait_until(
        lambda: lab.proxy_destinations(ns, "webhook") == [in_cluster],
        timeout=20,
        what="kube-proxy routes to the in-cluster Pod again",
    )
    endpoints = core.read_namespaced_endpoints("webhook", ns)
    assert [a.ip for s in endpoints.subsets for a in s.addresses] == [pod_ip]
