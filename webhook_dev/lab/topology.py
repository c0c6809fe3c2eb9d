"""Names and addresses of the lab's network namespaces and links (pure data).

::

      root namespace (pytest, the user's shell)
        wdlab-host  10.237.0.1/30
              │  veth ── the master may not open connections to the root namespace
        ┌─────┴──────── netns wdlab-master ───────────────────────────┐
        │ wdlab-m-host 10.237.0.2/30    etcd 127.0.0.1:2379            │
        │ wdlab-m-ws   10.237.0.5/30    kube-apiserver :6443           │
        │ route 10.96.0.0/16 (ClusterIPs) kube-controller-manager       │
        │                               kube-proxy (iptables), sshd :22 │
        └─────┬────────────────────────────────────────────────────────┘
              │  veth ── NEW connections from the master are dropped
        ┌─────┴──────── netns wdlab-ws ───────┐
        │ wdlab-ws-m 10.237.0.6/30            │
        │ webhook-dev, the developer's app    │
        └─────────────────────────────────────┘

Every name that lives outside the lab's namespaces (the namespaces themselves, the
root-side veth, ``/etc/netns/<ns>``) starts with the lab's prefix, so ``lab down`` finds
leftovers of a lab whose ``up`` was killed before it wrote anything else.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

DEFAULT_PREFIX = "wdlab"
# A /24 that is unlikely to be routed anywhere on a developer's machine; only the
# addresses of the lab's own veths come from it, and lab up refuses if it is in use.
DEFAULT_SUBNET = "10.237.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"
CLUSTER_DOMAIN = "cluster.local"
APISERVER_PORT = 6443
SSH_PORT = 22


@dataclass(frozen=True)
class Topology:
    """Every name and address of one lab, derived from a prefix and a /24."""

    prefix: str = DEFAULT_PREFIX
    subnet: str = DEFAULT_SUBNET

    def __post_init__(self) -> None:
        # Interface names are limited to 15 bytes; the longest we derive is "<prefix>-m-host".
        if not self.prefix.isidentifier() or len(self.prefix) > 8:
            raise ValueError(f"lab prefix {self.prefix!r} must be a short identifier (<= 8)")
        if ipaddress.ip_network(self.subnet).prefixlen > 28:
            raise ValueError(f"lab subnet {self.subnet} is too small, need at least a /28")

    @classmethod
    def from_env(cls) -> Topology:
        """The default topology, or ``$WEBHOOK_DEV_LAB_PREFIX`` / ``$WEBHOOK_DEV_LAB_SUBNET``
        for a second lab beside the first (our own teardown test does that)."""
        return cls(
            prefix=os.environ.get("WEBHOOK_DEV_LAB_PREFIX") or DEFAULT_PREFIX,
            subnet=os.environ.get("WEBHOOK_DEV_LAB_SUBNET") or DEFAULT_SUBNET,
        )

    def _address(self, offset: int) -> str:
        return str(ipaddress.ip_network(self.subnet)[offset])

    # Namespaces.
    @property
    def master_ns(self) -> str:
        return f"{self.prefix}-master"

    @property
    def workstation_ns(self) -> str:
        return f"{self.prefix}-ws"

    # root <-> master link.
    @property
    def host_link(self) -> str:
        return f"{self.prefix}-host"

    @property
    def master_host_link(self) -> str:
        return f"{self.prefix}-m-host"

    @property
    def host_ip(self) -> str:
        return self._address(1)

    @property
    def master_host_ip(self) -> str:
        """The master's address as seen from the root namespace (pytest's kubeconfig)."""
        return self._address(2)

    # master <-> workstation link.
    @property
    def master_ws_link(self) -> str:
        return f"{self.prefix}-m-ws"

    @property
    def ws_link(self) -> str:
        return f"{self.prefix}-ws-m"

    @property
    def master_ip(self) -> str:
        """The master's address as seen from the workstation: apiserver, sshd, tunnels."""
        return self._address(5)

    @property
    def workstation_ip(self) -> str:
        return self._address(6)

    @property
    def first_service_ip(self) -> str:
        """The ClusterIP the apiserver gives the ``kubernetes`` Service."""
        return str(ipaddress.ip_network(SERVICE_CIDR)[1])

    @property
    def netns_etc_dirs(self) -> tuple[str, ...]:
        """``/etc/netns/<ns>``: files ``ip netns exec`` bind-mounts over ``/etc``."""
        return (f"/etc/netns/{self.master_ns}", f"/etc/netns/{self.workstation_ns}")

    @property
    def apiserver_sans(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """DNS names and IPs the apiserver's serving certificate must carry."""
        dns = (
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            f"kubernetes.default.svc.{CLUSTER_DOMAIN}",
            "localhost",
        )
        ips = (self.master_ip, self.master_host_ip, self.first_service_ip, "127.0.0.1")
        return dns, ips
