"""The lab's node runs real Pods: kubelet, containerd, runc, CNI, and images built here.

Everything a user's cluster does with a Pod is done for real: scheduled by kube-scheduler,
started by the kubelet through containerd's CRI, networked by the CNI bridge, reached
from the master at its Pod IP, and its logs, exec and port-forward go through the
apiserver to the kubelet with the lab's certificates.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import closing

import pytest
from kubernetes import client

from tests.lab.node_helpers import nginx_pod, wait_running
from webhook_dev.lab import Lab
from webhook_dev.lab.images import NGINX_IMAGE, PAUSE_IMAGE, SAMPLE_IMAGE

pytestmark = pytest.mark.e2e


def kubectl(lab: Lab, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    binary = lab.state.binaries.get("kubectl")
    if not binary:
        pytest.fail("kubectl is not built (run `webhook-dev lab build`)")
    return subprocess.run(
        [binary, f"--kubeconfig={lab.host_kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def http_get_from_master(lab: Lab, url: str) -> str:
    """GET ``url`` from a process in the master namespace (where the apiserver runs)."""
    script = (
        f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    )
    result = subprocess.run(
        lab.master_argv([sys.executable, "-c", script]), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_node_is_ready_and_lists_the_images_built_here(lab_node: Lab) -> None:
    node = client.CoreV1Api(lab_node.api_client()).read_node(lab_node.node_name)

    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True"
    assert node.status.node_info.container_runtime_version.startswith("containerd://")
    assert node.status.node_info.kubelet_version == "v1.37.2"
    names = {name for image in node.status.images for name in image.names}
    assert {PAUSE_IMAGE, SAMPLE_IMAGE, NGINX_IMAGE} <= names
    assert not [t for t in node.spec.taints or [] if t.key == "node.kubernetes.io/not-ready"]


def test_a_pod_runs_and_its_ip_answers_from_the_master(
    lab_node: Lab, lab_node_namespace: str
) -> None:
    core = client.CoreV1Api(lab_node.api_client())
    started = time.monotonic()
    core.create_namespaced_pod(lab_node_namespace, nginx_pod("web"))
    pod = wait_running(core, lab_node_namespace, "web")
    took = time.monotonic() - started

    assert pod.spec.node_name == lab_node.node_name
    assert pod.status.pod_ip.startswith(lab_node.pod_cidr.rsplit(".", 1)[0])
    assert "webhook-dev lab nginx" in http_get_from_master(lab_node, f"http://{pod.status.pod_ip}/")
    print(f"Pod create -> Running: {took:.2f}s")


def test_logs_exec_and_port_forward_reach_the_kubelet_through_the_apiserver(
    lab_node: Lab, lab_node_namespace: str
) -> None:
    core = client.CoreV1Api(lab_node.api_client())
    core.create_namespaced_pod(lab_node_namespace, nginx_pod("web"))
    wait_running(core, lab_node_namespace, "web")

    namespace = lab_node_namespace
    executed = kubectl(lab_node, "-n", namespace, "exec", "web", "--", "cat", "/etc/hostname")
    assert executed.returncode == 0, executed.stderr
    assert executed.stdout.strip() == "web"

    port = free_port()
    forward = subprocess.Popen(
        [
            lab_node.state.binaries["kubectl"],
            f"--kubeconfig={lab_node.host_kubeconfig}",
            "-n",
            lab_node_namespace,
            "port-forward",
            "pod/web",
            f"{port}:80",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()  # "Forwarding from 127.0.0.1:<port> -> 80"
        assert f"127.0.0.1:{port}" in line, forward.stderr.read() if forward.stderr else line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert b"webhook-dev lab nginx" in response.read()
    finally:
        forward.terminate()
        forward.wait(timeout=10)

    # nginx logs each request to the container's stdout: the forwarded one is there.
    deadline = time.monotonic() + 10
    logs = ""
    while time.monotonic() < deadline and '"GET / HTTP/1.1" 200' not in logs:
        logs = core.read_namespaced_pod_log("web", lab_node_namespace, container="nginx")
        time.sleep(0.2)
    assert '"GET / HTTP/1.1" 200' in logs


def test_the_sidecar_sample_serves_in_cluster_and_its_sidecar_starts(lab_node: Lab) -> None:
    deployed = lab_node.deploy_sample("sidecar-injector")
    core = client.CoreV1Api(lab_node.api_client())
    try:
        assert deployed.pod_ips, "the sample's Deployment has no Ready replica"
        pod = client.V1Pod(
            metadata=client.V1ObjectMeta(name="app"),
            spec=client.V1PodSpec(
                containers=[
                    client.V1Container(
                        name="app",
                        image=NGINX_IMAGE,
                        image_pull_policy="Never",
                        command=["sleep", "infinity"],
                    )
                ],
                termination_grace_period_seconds=1,
            ),
        )
        created = core.create_namespaced_pod("sidecar-demo", pod)
        assert [c.name for c in created.spec.containers] == ["app", "nginx-sidecar"]

        running = wait_running(core, "sidecar-demo", "app")
        assert len(running.status.container_statuses) == 2  # kubectl get pod: 2/2
        answer = http_get_from_master(lab_node, f"http://{running.status.pod_ip}/")
        assert answer.strip() == "hello from the nginx sidecar"
    finally:
        lab_node.delete_sample(deployed)


def test_a_pod_reaches_the_apiserver_through_the_kubernetes_service(
    lab_node: Lab, lab_node_namespace: str
) -> None:
    """As in-cluster clients do: $KUBERNETES_SERVICE_HOST, the service account's CA."""
    script = (
        "import os, ssl, urllib.request; "
        "ca = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt'; "
        "url = 'https://' + os.environ['KUBERNETES_SERVICE_HOST'] + '/version'; "
        "print(urllib.request.urlopen(url, context=ssl.create_default_context(cafile=ca),"
        " timeout=10).read().decode())"
    )
    core = client.CoreV1Api(lab_node.api_client())
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="in-cluster"),
        spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[
                client.V1Container(
                    name="client",
                    image=SAMPLE_IMAGE,
                    image_pull_policy="Never",
                    command=["python3", "-c", script],
                )
            ],
        ),
    )
    core.create_namespaced_pod(lab_node_namespace, pod)
    deadline = time.monotonic() + 60
    phase = ""
    while time.monotonic() < deadline and phase not in ("Succeeded", "Failed"):
        phase = core.read_namespaced_pod("in-cluster", lab_node_namespace).status.phase
        time.sleep(0.2)
    logs = core.read_namespaced_pod_log("in-cluster", lab_node_namespace)
    assert phase == "Succeeded", logs
    assert '"gitVersion": "v1.37.2"' in logs
