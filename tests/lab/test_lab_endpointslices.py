"""An open question of the design, settled with the real controllers of the pinned release.

When `webhook-dev up` removes a Service's selector and writes manual Endpoints pointing at
the tunnel, what happens to the EndpointSlices the controllers made for the in-cluster
webhook Pods? There is no kubelet, so the "in-cluster Pod" is bound to the master's Node
and given a Ready status by hand, which is all the endpoint controllers look at.

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

from tests.polling import wait_until
from webhook_dev.lab import Lab

pytestmark = pytest.mark.e2e

POD_IP = "10.244.0.10"  # never routed anywhere: only compared, not dialled
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
    lab: Lab, lab_api_client: client.ApiClient, lab_namespace: str
) -> None:
    core = client.CoreV1Api(lab_api_client)
    ns = lab_namespace
    core.create_namespaced_service(
        ns,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="webhook"),
            spec=client.V1ServiceSpec(
                selector={"app": "webhook"},
                ports=[client.V1ServicePort(name="https", port=443, target_port=8443)],
            ),
        ),
    )
    core.create_namespaced_pod(
        ns,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name="webhook-0", labels={"app": "webhook"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="webhook", image="x")]),
        ),
    )
    core.create_namespaced_binding(
        ns,
        client.V1Binding(
            metadata=client.V1ObjectMeta(name="webhook-0"),
            target=client.V1ObjectReference(kind="Node", name=lab.master_ns),
        ),
        _preload_content=False,
    )
    core.patch_namespaced_pod_status(
        "webhook-0",
        ns,
        {
            "status": {
                "phase": "Running",
                "podIP": POD_IP,
                "podIPs": [{"ip": POD_IP}],
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                ],
            }
        },
    )
    in_cluster = f"{POD_IP}:8443"
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
    assert slices_by_manager(lab_api_client, ns) == {CONTROLLER: [POD_IP], MIRRORING: [POD_IP]}

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
        lambda: slices_by_manager(lab_api_client, ns) == {CONTROLLER: [POD_IP]},
        timeout=20,
        what="the controller recreates its slice and the mirror is removed",
    )
    wait_until(
        lambda: lab.proxy_destinations(ns, "webhook") == [in_cluster],
        timeout=20,
        what="kube-proxy routes to the in-cluster Pod again",
    )
    endpoints = core.read_namespaced_endpoints("webhook", ns)
    assert [a.ip for s in endpoints.subsets for a in s.addresses] == [POD_IP]
