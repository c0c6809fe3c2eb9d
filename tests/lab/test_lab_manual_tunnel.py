"""Proof 2: the seed's manual technique with real binaries — the baseline for `up`.

Endpoints point at the master's address; OpenSSH's client on the workstation opens
``ssh -N -R <master-ip>:<port>:127.0.0.1:<local>``; the webhook is served on the
workstation's loopback. With ``GatewayPorts yes`` the apiserver reaches it through sshd.
With ``GatewayPorts no`` sshd binds the forward to the master's loopback only, which the
apiserver refuses to use as an endpoint, so the call fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.lab.conftest import (
    LABEL,
    WebhookTLS,
    create_pod,
    route_service_to,
    wait_for_proxy,
    wait_until_mutated,
    webhook_server_argv,
)
from tests.polling import wait_until
from webhook_dev.lab import Lab
from webhook_dev.lab.readiness import listening_addresses

pytestmark = pytest.mark.e2e

TUNNEL_PORT = 19443  # on the master
LOCAL_PORT = 8443  # on the workstation's loopback


def open_manual_tunnel(lab: Lab, background: Callable[..., Any]) -> list[str]:
    """Start `ssh -N -R` from the workstation; return the addresses sshd listens on."""
    background(
        lab.workstation_argv(
            [
                "ssh",
                "-N",
                "-o",
                "ExitOnForwardFailure=yes",
                "-R",
                f"{lab.master_ip}:{TUNNEL_PORT}:127.0.0.1:{LOCAL_PORT}",
                lab.ssh_destination,
            ]
        )
    )
    return wait_until(
        lambda: listening_addresses(lab.master_ns, TUNNEL_PORT),
        timeout=15,
        what="ssh -R opened a listener on the master",
    )


@pytest.fixture
def workstation_webhook(lab: Lab, webhook_tls: WebhookTLS, background: Callable[..., Any]) -> None:
    background(
        lab.workstation_argv(
            webhook_server_argv(webhook_tls, "127.0.0.1", LOCAL_PORT, "workstation")
        ),
        ready_line="listening",
    )


@pytest.fixture
def restore_gateway_ports(lab: Lab) -> Any:
    before = lab.state.gateway_ports
    yield
    lab.set_gateway_ports(before)  # type: ignore[arg-type]


@pytest.mark.usefixtures("workstation_webhook", "restore_gateway_ports")
@pytest.mark.parametrize(
    ("gateway_ports", "bound"),
    [
        # "yes" binds the wildcard whatever address the client asked for...
        ("yes", ["0.0.0.0", "::"]),
        # ...while "clientspecified" binds exactly the requested one.
        ("clientspecified", ["{master_ip}"]),
    ],
)
def test_manual_ssh_reverse_tunnel_reaches_workstation_webhook(
    lab: Lab,
    lab_api_client: client.ApiClient,
    lab_namespace: str,
    webhook_tls: WebhookTLS,
    background: Callable[..., Any],
    mutating_webhook: Callable[[str, bytes], str],
    gateway_ports: Any,
    bound: list[str],
) -> None:
    lab.set_gateway_ports(gateway_ports)
    expected = [address.format(master_ip=lab.master_ip) for address in bound]
    assert sorted(open_manual_tunnel(lab, background)) == sorted(expected)
    route_service_to(lab_api_client, lab_namespace, lab.master_ip, TUNNEL_PORT)
    mutating_webhook(lab_namespace, webhook_tls.ca_pem)
    wait_for_proxy(lab, lab_namespace, f"{lab.master_ip}:{TUNNEL_PORT}")

    assert wait_until_mutated(lab_api_client, lab_namespace) == "workstation"
    create_pod(lab_api_client, lab_namespace, "app")
    stored = client.CoreV1Api(lab_api_client).read_namespaced_pod("app", lab_namespace)
    assert stored.metadata.labels[LABEL] == "workstation"


@pytest.mark.usefixtures("workstation_webhook", "restore_gateway_ports")
def test_manual_ssh_reverse_tunnel_with_gateway_ports_no_binds_loopback_and_call_fails(
    lab: Lab,
    lab_api_client: client.ApiClient,
    lab_namespace: str,
    webhook_tls: WebhookTLS,
    background: Callable[..., Any],
    mutating_webhook: Callable[[str, bytes], str],
) -> None:
    lab.set_gateway_ports("no")
    # sshd accepts the forward but silently ignores the requested address.
    assert sorted(open_manual_tunnel(lab, background)) == ["127.0.0.1", "::1"]
    route_service_to(lab_api_client, lab_namespace, lab.master_ip, TUNNEL_PORT)
    mutating_webhook(lab_namespace, webhook_tls.ca_pem)
    wait_for_proxy(lab, lab_namespace, f"{lab.master_ip}:{TUNNEL_PORT}")

    with pytest.raises(ApiException) as refused:
        create_pod(lab_api_client, lab_namespace, "app")
    assert refused.value.status == 500
    assert "failed calling webhook" in refused.value.body
    assert "connection refused" in refused.value.body
