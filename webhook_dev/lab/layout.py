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
