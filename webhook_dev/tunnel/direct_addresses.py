"""Where ``--direct`` listens and whom it lets in, learned from the cluster before any change.

The apiserver opens its webhook connections from the control-plane node it runs on, so
the allow-list is the InternalIPs of the Nodes labelled control-plane (or master) when
the API shows them. Where it shows none (managed control planes, RBAC that hides Nodes),
it is the apiserver's own host: the addresses the ``default/kubernetes`` Endpoints
advertise and the kubeconfig server's IP unless that is loopback.

The address to listen on is the one this machine sends from toward the cluster: the
kernel's source address for a route to the kubeconfig server's host — or, when that host
is a local port mapping (kind, k3d and minikube's ``127.0.0.1:<port>``), to a
control-plane node's InternalIP, which sits on the container network the cluster shares
with this machine.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from webhook_dev.addresses import is_ip_address
from webhook_dev.errors import ClusterError, PreflightError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.tunnel.direct import AllowList, DirectSpec, source_address_toward

CONTROL_PLANE_LABELS = (
    "node-role.kubernetes.io/control-plane",
    "node-role.kubernetes.io/master",
)


@dataclass(frozen=True)
class ClusterAddresses:
    """What the cluster shows of where its apiserver calls from."""

    server_ips: list[str]  # the kubeconfig server's host, resolved
    control_plane: dict[str, str] = field(default_factory=dict)  # InternalIP -> Node name
    advertised: list[str] = field(default_factory=list)  # default/kubernetes Endpoints

    @property
    def server_is_local(self) -> bool:
        return bool(self.server_ips) and all(_is_loopback(ip) for ip in self.server_ips)

    def allowed_peers(self) -> tuple[list[str], str]:
        """The addresses the apiserver calls from, and for people where they came from."""
        if self.control_plane:
            names = ", ".join(sorted(set(self.control_plane.values())))
            return sorted(self.control_plane), f"InternalIP of control-plane node {names}"
        remote = [ip for ip in self.server_ips if not _is_loopback(ip)]
        host = list(dict.fromkeys(self.advertised + remote))
        return host, "the apiserver's host (no control-plane Nodes visible)"

    def route_target(self) -> str | None:
        """The address whose route tells which of this machine's IPs the cluster reaches."""
        remote = [ip for ip in self.server_ips if not _is_loopback(ip)]
        if remote:
            return remote[0]
        candidates = sorted(self.control_plane) + self.advertised
        return next((ip for ip in candidates if not _is_loopback(ip)), None)


def learn(cluster: Cluster) -> ClusterAddresses:
    """Read Nodes and the ``kubernetes`` Endpoints; what RBAC hides is simply absent."""
    host = urlsplit(cluster.server).hostname or ""
    control_plane: dict[str, str] = {}
    advertised: list[str] = []
    try:
        for node in cluster.list("/api/v1/nodes"):
            labels = node.get("metadata", {}).get("labels") or {}
            if not any(label in labels for label in CONTROL_PLANE_LABELS):
                continue
            for address in (node.get("status") or {}).get("addresses") or []:
                if address.get("type") == "InternalIP" and address.get("address"):
                    control_plane[address["address"]] = node["metadata"]["name"]
    except ClusterError:
        pass
    try:
        endpoints = cluster.get_or_none("/api/v1/namespaces/default/endpoints/kubernetes")
        for subset in (endpoints or {}).get("subsets") or []:
            advertised += [a["ip"] for a in subset.get("addresses") or [] if a.get("ip")]
    except ClusterError:
        pass
    return ClusterAddresses(resolve(host), control_plane, advertised)


def resolve(host: str) -> list[str]:
    """``host``'s IPs (an IP literal is itself); empty when it does not resolve."""
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def plan_direct(
    addresses: ClusterAddresses,
    *,
    address: str | None = None,
    allow_from: Sequence[str] = (),
    port: int = 0,
) -> DirectSpec:
    """The address to listen on and the allow-list, from the cluster and the flags.

    :raises PreflightError: no address can be chosen, or nobody would be allowed in.
    """
    if address is None:
        target = addresses.route_target()
        if target is None:
            raise PreflightError(
                "cannot tell which of this machine's addresses the cluster reaches: the "
                "kubeconfig server is local and the API shows no control-plane Node",
                hint="pass --address with this machine's IP as the cluster sees it",
            )
        address = source_address_toward(target)
        chosen = f"the route toward {target}"
    else:
        chosen = "--address"
    if not is_ip_address(address):
        raise PreflightError(
            f"--address {address!r} is not an IP address",
            hint="give this machine's IP as the cluster reaches it, e.g. --address 172.18.0.1",
        )
    peers, because = addresses.allowed_peers()
    try:
        extra = AllowList.of(allow_from)
    except ValueError as error:
        raise PreflightError(
            f"--allow-from: {error}", hint="give an address or a CIDR, e.g. 10.0.0.0/8"
        ) from None
    if not peers and not extra.networks:
        raise PreflightError(
            "the API shows neither control-plane Nodes nor the apiserver's address, so "
            "webhook-dev cannot tell whom to let in",
            hint="pass --allow-from with the address(es) the apiserver connects from",
        )
    allowed = AllowList.of(peers)
    allowed = AllowList(tuple(dict.fromkeys(allowed.networks + extra.networks)))
    if extra.networks:
        because += f" and --allow-from {extra}"
    return DirectSpec(
        address=address,
        allowed=allowed,
        port=port,
        allowed_because=because,
        address_because=chosen,
    )
