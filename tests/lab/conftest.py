"""Fixtures for the lab's proof tests: background processes, a webhook's TLS, and the
Kubernetes objects that route a webhook call (selectorless Service + manual Endpoints +
MutatingWebhookConfiguration). The lab itself comes from webhook_dev.lab.pytest_plugin."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.harness import RunningProcess, stopped_at_exit
from tests.polling import wait_until
from webhook_dev.lab import Lab
from webhook_dev.tls import certs

WEBHOOK_SERVER = str(Path(__file__).with_name("webhook_server.py"))
LABEL = "webhook-dev.io/mutated-by"


@dataclass(frozen=True)
class WebhookTLS:
    ca_pem: bytes
    cert: Path
    key: Path


@pytest.fixture
def background() -> Iterator[Callable[..., RunningProcess]]:
    """Start a process (optionally wait for a line on stdout); stopped after the test."""
    with stopped_at_exit() as processes:

        def start(
            argv: Sequence[str], *, ready_line: str | None = None, timeout: float = 15
        ) -> RunningProcess:
            running = processes.add(RunningProcess(argv))
            if ready_line is not None:
                running.wait_for(re.escape(ready_line), timeout=timeout)
            return running

        yield start


@pytest.fixture
def webhook_tls(tmp_path: Path, lab_namespace: str) -> WebhookTLS:
    """A test CA and a serving cert for Service ``webhook`` in the test namespace."""
    ca = certs.new_ca("webhook-test-ca")
    names = (
        "webhook",
        f"webhook.{lab_namespace}",
        f"webhook.{lab_namespace}.svc",
        f"webhook.{lab_namespace}.svc.cluster.local",
    )
    issued = certs.new_serving_cert(ca, dns_names=names)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    return WebhookTLS(ca.cert_pem, cert, key)


def webhook_server_argv(tls: WebhookTLS, host: str, port: int, tag: str) -> list[str]:
    return [
        sys.executable,
        WEBHOOK_SERVER,
        "--host",
        host,
        "--port",
        str(port),
        "--cert",
        str(tls.cert),
        "--key",
        str(tls.key),
        "--tag",
        tag,
    ]


def route_service_to(api: client.ApiClient, namespace: str, ip: str, port: int) -> None:
    """Service ``webhook`` (no selector, port 443) whose manual Endpoints are ip:port —
    what ``webhook-dev up`` (and the seed's manual technique) points at the tunnel."""
    core = client.CoreV1Api(api)
    core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="webhook"),
            spec=client.V1ServiceSpec(
                ports=[
                    client.V1ServicePort(name="https", port=443, target_port=port, protocol="TCP")
                ]
            ),
        ),
    )
    core.create_namespaced_endpoints(
        namespace,
        client.V1Endpoints(
            metadata=client.V1ObjectMeta(name="webhook"),
            subsets=[
                client.V1EndpointSubset(
                    addresses=[client.V1EndpointAddress(ip=ip)],
                    ports=[client.CoreV1EndpointPort(name="https", port=port, protocol="TCP")],
                )
            ],
        ),
    )


@pytest.fixture
def mutating_webhook(lab_api_client: client.ApiClient) -> Iterator[Callable[[str, bytes], str]]:
    """Register a MutatingWebhookConfiguration for Pods in one namespace (deleted after)."""
    admission = client.AdmissionregistrationV1Api(lab_api_client)
    names: list[str] = []

    def register(namespace: str, ca_pem: bytes) -> str:
        import base64

        name = f"{namespace}-mutate"
        admission.create_mutating_webhook_configuration(
            client.V1MutatingWebhookConfiguration(
                metadata=client.V1ObjectMeta(name=name),
                webhooks=[
                    client.V1MutatingWebhook(
                        name="pods.webhook-dev.io",
                        admission_review_versions=["v1"],
                        side_effects="None",
                        failure_policy="Fail",
                        timeout_seconds=5,
                        client_config=client.AdmissionregistrationV1WebhookClientConfig(
                            service=client.AdmissionregistrationV1ServiceReference(
                                namespace=namespace, name="webhook", path="/mutate", port=443
                            ),
                            ca_bundle=base64.b64encode(ca_pem).decode(),
                        ),
                        rules=[
                            client.V1RuleWithOperations(
                                api_groups=[""],
                                api_versions=["v1"],
                                operations=["CREATE"],
                                resources=["pods"],
                            )
                        ],
                        namespace_selector=client.V1LabelSelector(
                            match_labels={"kubernetes.io/metadata.name": namespace}
                        ),
                    )
                ],
            )
        )
        names.append(name)
        return name

    yield register
    for name in names:
        try:
            admission.delete_mutating_webhook_configuration(name)
        except ApiException as error:
            if error.status != 404:
                raise


def pod_manifest(name: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="busybox")]),
    )


def create_pod(api: client.ApiClient, namespace: str, name: str, *, dry_run: bool = False) -> Any:
    core = client.CoreV1Api(api)
    kwargs = {"dry_run": "All"} if dry_run else {}
    return core.create_namespaced_pod(namespace, pod_manifest(name), **kwargs)


def wait_until_mutated(api: client.ApiClient, namespace: str, timeout: float = 20) -> str:
    """Dry-run Pod creates until the webhook answers; return its tag.

    The apiserver and kube-proxy learn about new Endpoints through watches, a few ms to a
    second after the write; a test waits for that, then asserts on a real create.
    """

    def tag() -> str:
        pod = create_pod(api, namespace, "probe", dry_run=True)
        return str((pod.metadata.labels or {}).get(LABEL) or "")

    return wait_until(
        tag, timeout=timeout, interval=0.2, what="the webhook was called", ignoring=(ApiException,)
    )


def wait_for_proxy(lab: Lab, namespace: str, destination: str, timeout: float = 20) -> None:
    wait_until(
        lambda: destination in lab.proxy_destinations(namespace, "webhook"),
        timeout=timeout,
        what=f"kube-proxy DNATs {namespace}/webhook to {destination}",
    )
