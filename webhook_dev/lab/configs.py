"""Text of the lab's config files (pure: values in, file content out).

Kept apart from the code that writes them so each can be unit-tested and read in one
place: kubeconfigs, kube-proxy's configuration, sshd_config, and the workstation's ssh
client config that makes ``ssh root@<master>`` and asyncssh work without prompts.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import yaml

GatewayPorts = Literal["no", "yes", "clientspecified"]
GATEWAY_PORTS_CHOICES: tuple[str, ...] = ("no", "yes", "clientspecified")

# Where the workstation sees the files we place in /etc/netns/<ws>/ssh/ (bind-mounted
# over /etc/ssh by `ip netns exec`).
WORKSTATION_SSH_DIR = "/etc/ssh"
WORKSTATION_IDENTITY = f"{WORKSTATION_SSH_DIR}/webhook_dev_lab_id_ed25519"
WORKSTATION_KNOWN_HOSTS = f"{WORKSTATION_SSH_DIR}/ssh_known_hosts"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(
    *, server: str, ca_pem: bytes, user: str, cert_pem: bytes, key_pem: bytes, context: str
) -> str:
    """A kubeconfig with the credentials inline, so the file alone is enough."""
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(cert_pem),
                    "client-key-data": _b64(key_pem),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
        "current-context": context,
    }
    return yaml.safe_dump(document, sort_keys=False)


def kube_proxy_config(
    *, kubeconfig_path: str, hostname: str, node_ip: str, cluster_cidr: str = ""
) -> str:
    """KubeProxyConfiguration for iptables mode on a node that has no kubelet.

    conntrack sizing is left alone (maxPerCore 0, timeouts 0): those sysctls are global
    to the machine, and the lab must not change the machine outside its namespaces.
    """
    document: dict[str, Any] = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "hostnameOverride": hostname,
        "clusterCIDR": cluster_cidr,
        "clientConnection": {"kubeconfig": kubeconfig_path},
        "bindAddress": node_ip,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"syncPeriod": "30s", "minSyncPeriod": "0s"},
    }
    return yaml.safe_dump(document, sort_keys=False)


def sshd_config(
    *,
    listen_address: str,
    port: int,
    host_key: str,
    authorized_keys: str,
    pid_file: str,
    gateway_ports: GatewayPorts,
    session_home: str,
) -> str:
    """The master's sshd: key-only root login, TCP forwarding, GatewayPorts as asked.

    ``UsePAM no``: PAM would consult the machine's /etc/pam.d and account state, which is
    not the lab's business; ``StrictModes`` stays on (our files are root-owned, 0600/0700).

    ``SetEnv HOME``: the master shares this machine's files, so a command over ssh would
    run root's own ``~/.bashrc`` — on a developer's machine that can be slow or hang (a
    version manager's rehash waiting on a lock that a killed session left behind). A real
    master has its own home; sessions here get an empty one of the lab's.
    """
    if gateway_ports not in GATEWAY_PORTS_CHOICES:
        raise ValueError(f"GatewayPorts must be one of {GATEWAY_PORTS_CHOICES}")
    return "\n".join(
        [
            "# Written by webhook-dev lab; rewritten by `Lab.set_gateway_ports`.",
            f"ListenAddress {listen_address}",
            f"Port {port}",
            f"HostKey {host_key}",
            f"AuthorizedKeysFile {authorized_keys}",
            f"PidFile {pid_file}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "AllowTcpForwarding yes",
            f"GatewayPorts {gateway_ports}",
            f"SetEnv HOME={session_home}",
            "ClientAliveInterval 15",
            "MaxStartups 100",
            "MaxSessions 100",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
            "",
        ]
    )


def workstation_ssh_config(*, master_ip: str, user: str = "root") -> str:
    """ssh_config for the workstation: the lab's identity, strict host keys, no prompts."""
    return "\n".join(
        [
            "# Written by webhook-dev lab (bind-mounted over /etc/ssh in the workstation netns).",
            f"Host {master_ip} master",
            f"    HostName {master_ip}",
            f"    User {user}",
            f"    IdentityFile {WORKSTATION_IDENTITY}",
            "    IdentitiesOnly yes",
            "",
            "Host *",
            "    StrictHostKeyChecking yes",
            f"    UserKnownHostsFile {WORKSTATION_KNOWN_HOSTS}",
            f"    GlobalKnownHostsFile {WORKSTATION_KNOWN_HOSTS}",
            "    BatchMode yes",
            "    ConnectTimeout 5",
            "",
        ]
    )


def known_hosts_line(*, host: str, port: int, public_key_line: str) -> str:
    """A known_hosts entry; a non-default port uses OpenSSH's ``[host]:port`` form."""
    key_type, key_data = public_key_line.split()[:2]
    pattern = host if port == 22 else f"[{host}]:{port}"
    return f"{pattern} {key_type} {key_data}\n"
