from __future__ import annotations

import base64

import pytest
import yaml

from webhook_dev.lab import configs


def test_kubeconfig_carries_credentials_inline() -> None:
    text = configs.kubeconfig(
        server="https://10.0.0.1:6443",
        ca_pem=b"CA",
        user="admin",
        cert_pem=b"CERT",
        key_pem=b"KEY",
        context="lab",
    )
    document = yaml.safe_load(text)
    assert document["current-context"] == "lab"
    cluster = document["clusters"][0]["cluster"]
    assert cluster["server"] == "https://10.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == b"CA"
    user = document["users"][0]["user"]
    assert base64.b64decode(user["client-key-data"]) == b"KEY"


def test_kube_proxy_runs_iptables_mode_and_leaves_machine_wide_conntrack_alone() -> None:
    document = yaml.safe_load(
        configs.kube_proxy_config(kubeconfig_path="/k", hostname="node", node_ip="10.0.0.5")
    )
    assert document["mode"] == "iptables"
    assert document["hostnameOverride"] == "node"
    assert document["bindAddress"] == "10.0.0.5"
    assert document["conntrack"]["maxPerCore"] == 0
    assert document["conntrack"]["tcpEstablishedTimeout"] == "0s"


@pytest.mark.parametrize("gateway_ports", ["no", "yes", "clientspecified"])
def test_sshd_config_sets_gateway_ports_and_key_only_root_login(gateway_ports: str) -> None:
    text = configs.sshd_config(
        listen_address="10.0.0.5",
        port=22,
        host_key="/h",
        authorized_keys="/a",
        pid_file="/p",
        gateway_ports=gateway_ports,
        session_home="/lab/home",
    )  # type: ignore[arg-type]
    lines = set(text.splitlines())
    assert f"GatewayPorts {gateway_ports}" in lines
    assert "SetEnv HOME=/lab/home" in lines  # not this machine's ~/.bashrc
    assert {
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "UsePAM no",
        "ListenAddress 10.0.0.5",
        "AllowTcpForwarding yes",
    } <= lines


def test_sshd_config_refuses_unknown_gateway_ports() -> None:
    with pytest.raises(ValueError):
        configs.sshd_config(
            listen_address="x",
            port=22,
            host_key="/h",
            authorized_keys="/a",
            pid_file="/p",
            gateway_ports="maybe",
            session_home="/lab/home",
        )  # type: ignore[arg-type]


def test_workstation_ssh_config_verifies_host_keys_without_prompts() -> None:
    text = configs.workstation_ssh_config(master_ip="10.0.0.5")
    assert "StrictHostKeyChecking yes" in text
    assert "BatchMode yes" in text
    assert f"IdentityFile {configs.WORKSTATION_IDENTITY}" in text
    assert f"UserKnownHostsFile {configs.WORKSTATION_KNOWN_HOSTS}" in text


def test_known_hosts_line_uses_bracket_form_only_for_non_default_ports() -> None:
    key = "ssh-ed25519 AAAAC3Nz comment"
    assert (
        configs.known_hosts_line(host="10.0.0.5", port=22, public_key_line=key)
        == "10.0.0.5 ssh-ed25519 AAAAC3Nz\n"
    )
    assert (
        configs.known_hosts_line(host="10.0.0.5", port=2222, public_key_line=key)
        == "[10.0.0.5]:2222 ssh-ed25519 AAAAC3Nz\n"
    )
