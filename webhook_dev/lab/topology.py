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

      and, unless ``--no-node``, a worker node hanging off the master:

        wdlab-m-node 10.237.0.9/30 (in the master) ── route 10.237.0.128/25 via the node
        ┌─────────────── netns wdlab-node ────────────────────────────┐
        │ wdlab-n-m 10.237.0.10/30, default route via the master      │
        │ kubelet :10250, containerd, bridge wdlab-br 10.237.0.129/25 │
        │   └─ Pods 10.237.0.130 ... (each in its own netns)          │
        └─────────────────────────────────────────────────────────────┘

The Pod CIDR is the upper half of the lab's own subnet, so two labs with different subnets
can never hand out the same Pod address, and ``lab up``'s check that the subnet is unused
covers it too.

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

    @property
    def can_have_node(self) -> bool:
        """A node needs a /26 or larger: links in the lower half, Pods in the upper."""
        return ipaddress.ip_network(self.subnet).prefixlen <= 26

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

    # master <-> node link and the Pods behind the node.
    @property
    def node_ns(self) -> str:
        return f"{self.prefix}-node"

    @property
    def node_name(self) -> str:
        """The node's Node object (and hostname override), like the master's."""
        return self.node_ns

    @property
    def master_node_link(self) -> str:
        return f"{self.prefix}-m-node"

    @property
    def node_master_link(self) -> str:
        return f"{self.prefix}-n-m"

    @property
    def master_node_ip(self) -> str:
        """The master's address on the node link: the node's (and Pods') default gateway."""
        return self._address(9)

    @property
    def node_ip(self) -> str:
        """The node's InternalIP: the kubelet's serving address, what the apiserver dials."""
        return self._address(10)

    @property
    def pod_cidr(self) -> str:
        """The upper half of the lab's subnet (see the module docstring)."""
        _lower, upper = ipaddress.ip_network(self.subnet).subnets(prefixlen_diff=1)
        return str(upper)

    @property
    def pod_gateway(self) -> str:
        """The node's bridge address, first of the Pod CIDR."""
        return str(ipaddress.ip_network(self.pod_cidr)[1])

    @property
    def pod_bridge(self) -> str:
        return f"{self.prefix}-br"

    @property
    def pod_network(self) -> str:
        """CNI network name; also names the CNI plugins' files left under /var/lib/cni."""
        return f"{self.prefix}-pods"

    @property
    def node_cgroup(self) -> str:
        """The kubelet's cgroupRoot: every Pod's cgroup lives below it, in each hierarchy."""
        return f"/{self.prefix}-node"

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
