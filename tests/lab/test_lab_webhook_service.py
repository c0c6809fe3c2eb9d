"""Proof 1: kube-apiserver calls a service-based mutating webhook, in both resolver modes.

A selectorless Service with manual Endpoints points at a plain HTTPS listener in the
master namespace; the caBundle is a test CA. With aggregator routing off the apiserver
dials the ClusterIP and kube-proxy's iptables DNAT picks the endpoint; with it on, the
apiserver resolves the endpoint itself. Either way the stored Pod carries the mutation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.lab.conftest import (
    LABEL,
    WebhookTLS,
    create_pod,
    route_service_to,
    wait_for_proxy,
    wait_until_mutated,
    webhook_server_argv,
)
from webhook_dev.lab import Lab

pytestmark = pytest.mark.e2e

WEBHOOK_PORT = 18443


@pytest.fixture
def restore_aggregator_routing(lab: Lab) -> Iterator[None]:
    """Leave a reused lab (``webhook-dev lab up``) in the mode it was found in."""
    before = lab.state.aggregator_routing
    yield
    lab.set_aggregator_routing(before)


@pytest.mark.parametrize(
    "aggregator_routing", [False, True], ids=["clusterip-via-kube-proxy", "endpoint-resolver"]
)
@pytest.mark.usefixtures("restore_aggregator_routing")
def test_apiserver_calls_service_webhook_and_stores_mutated_pod(
    lab: Lab,
    lab_api_client: client.ApiClient,
    lab_namespace: str,
    webhook_tls: WebhookTLS,
    background: Callable[..., Any],
    mutating_webhook: Callable[[str, bytes], str],
    aggregator_routing: bool,
) -> None:
    lab.set_aggregator_routing(aggregator_routing)
    background(
        lab.master_argv(webhook_server_argv(webhook_tls, lab.master_ip, WEBHOOK_PORT, "master")),
        ready_line="listening",
    )
    route_service_to(lab_api_client, lab_namespace, lab.master_ip, WEBHOOK_PORT)
    mutating_webhook(lab_namespace, webhook_tls.ca_pem)
    if not aggregator_routing:
        wait_for_proxy(lab, lab_namespace, f"{lab.master_ip}:{WEBHOOK_PORT}")

    assert wait_until_mutated(lab_api_client, lab_namespace) == "master"
    create_pod(lab_api_client, lab_namespace, "app")

    stored = client.CoreV1Api(lab_api_client).read_namespaced_pod("app", lab_namespace)
    assert stored.metadata.labels[LABEL] == "master"
    assert stored.status.phase == "Pending"  # no kubelet: admitted and stored, never run
