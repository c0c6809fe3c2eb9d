"""Helpers for the node's tests: Pods from the lab's images, and waiting for them."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from webhook_dev.lab.images import NGINX_IMAGE


def nginx_pod(name: str, **spec: Any) -> client.V1Pod:
    """A Pod running the lab's nginx image (never pulled: there is no registry)."""
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="nginx",
                    image=NGINX_IMAGE,
                    image_pull_policy="Never",
                    ports=[client.V1ContainerPort(container_port=80)],
                )
            ],
            termination_grace_period_seconds=1,
            **spec,
        ),
    )


def wait_running(core: client.CoreV1Api, namespace: str, name: str, timeout: float = 60) -> Any:
    """The Pod once all its containers are ready; fails with its status otherwise."""
    deadline = time.monotonic() + timeout
    pod = None
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, namespace)
        statuses = pod.status.container_statuses or []
        if pod.status.phase == "Running" and statuses and all(status.ready for status in statuses):
            return pod
        time.sleep(0.1)
    status = pod.status if pod else None
    raise AssertionError(f"Pod {namespace}/{name} not running after {timeout}s: {status}")
