"""Where a running lab keeps its files (pure path arithmetic).

The lab lives in ``/run/webhook-dev-lab`` (``$WEBHOOK_DEV_LAB_DIR`` overrides it): the lab
is machine-wide (network namespaces are), needs root anyway, and vanishes on reboot just
like its namespaces do, so tmpfs under /run is the honest place. etcd's data dir is there
too, which also makes it fast. ``lab down`` removes the whole directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LAB_DIR = "/run/webhook-dev-lab"


def lab_dir() -> Path:
    return Path(os.environ.get("WEBHOOK_DEV_LAB_DIR") or DEFAULT_LAB_DIR)


@dataclass(frozen=True)
class LabLayout:
    """Paths inside one lab directory."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def ssh(self) -> Path:
        return self.root / "ssh"

    # PKI files.
    @property
    def ca_cert(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.pki / "ca.key"

    @property
    def apiserver_cert(self) -> Path:
        return self.pki / "apiserver.crt"

    @property
    def apiserver_key(self) -> Path:
        return self.pki / "apiserver.key"

    @property
    def service_account_key(self) -> Path:
        return self.pki / "sa.key"

    @property
    def service_account_pub(self) -> Path:
        return self.pki / "sa.pub"

    def client_cert(self, user: str) -> Path:
        return self.pki / f"{user}.crt"

    def client_key(self, user: str) -> Path:
        return self.pki / f"{user}.key"

    # Kubeconfigs.
    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig for the workstation namespace (server = master_ip)."""
        return self.root / "kubeconfig"

    @property
    def host_kubeconfig(self) -> Path:
        """Admin kubeconfig for the root namespace (server = master_host_ip)."""
        return self.root / "host.kubeconfig"

    def component_kubeconfig(self, component: str) -> Path:
        return self.root / f"{component}.kubeconfig"

    @property
    def kube_proxy_config(self) -> Path:
        return self.root / "kube-proxy.yaml"

    # sshd on the master.
    @property
    def sshd_config(self) -> Path:
        return self.ssh / "sshd_config"

    @property
    def master_home(self) -> Path:
        """$HOME of ssh sessions on the master (empty: none of this machine's rc files)."""
        return self.ssh / "master-home"

    @property
    def ssh_host_key(self) -> Path:
        return self.ssh / "ssh_host_ed25519_key"

    @property
    def authorized_keys(self) -> Path:
        return self.ssh / "authorized_keys"

    @property
    def client_identity(self) -> Path:
        """The workstation's private key (also bind-mounted into the workstation's /etc)."""
        return self.ssh / "id_ed25519"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    # The node (kubelet, containerd, CNI). Everything the node writes lives below here,
    # so teardown can find its mounts by path.
    @property
    def node(self) -> Path:
        return self.root / "node"

    @property
    def containerd_config(self) -> Path:
        return self.node / "containerd.toml"

    @property
    def containerd_root(self) -> Path:
        """Content store and snapshots (the imported images, the Pods' root filesystems)."""
        return self.node / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        """Sockets and task bundles (each shim's ``address`` file is under it)."""
        return self.node / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.node / "containerd" / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.node / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        """host-local's leases (one file per Pod IP)."""
        return self.node / "cni" / "ipam"

    @property
    def pod_netns_dir(self) -> Path:
        """Where containerd bind-mounts each Pod's network namespace (not /run/netns)."""
        return self.node / "netns"

    @property
    def kubelet_root(self) -> Path:
        """kubelet's ``--root-dir``: Pod volumes (secrets are tmpfs mounts below it)."""
        return self.node / "kubelet"

    @property
    def node_kube_proxy_config(self) -> Path:
        return self.node / "kube-proxy.yaml"

    @property
    def kubelet_config(self) -> Path:
        return self.node / "kubelet.yaml"

    @property
    def pod_logs(self) -> Path:
        return self.node / "pod-logs"

    @property
    def kernel_tunables(self) -> Path:
        """Files bind-mounted over /proc/sys in the node's mount namespace (see node.py)."""
        return self.node / "sysctl"

    @property
    def kubelet_cert(self) -> Path:
        return self.pki / "kubelet-serving.crt"

    @property
    def kubelet_key(self) -> Path:
        return self.pki / "kubelet-serving.key"
