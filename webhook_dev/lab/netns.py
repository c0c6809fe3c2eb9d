"""Network namespaces, veth pairs, routes and firewall rules, through ``ip`` and ``iptables``.

Every change the lab makes to the network lives inside its own namespaces, except the
root-side end of the root↔master veth, which disappears with its peer when the master
namespace is deleted. So teardown is: kill what runs in the namespaces, delete them.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Sequence

from webhook_dev.errors import LabError
from webhook_dev.lab.topology import SERVICE_CIDR, Topology


def run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a networking command; on failure raise :class:`LabError` with its stderr."""
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except FileNotFoundError as error:
        raise LabError(
            f"{argv[0]} is not installed",
            hint="run dev/setup.sh (iproute2, iptables, openssh-server)",
        ) from error
    if check and result.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed: {result.stderr.strip()}")
    return result


def in_namespace(namespace: str, argv: Sequence[str]) -> list[str]:
    """``argv`` run inside ``namespace`` (which also bind-mounts /etc/netns/<ns>/*)."""
    return ["ip", "netns", "exec", namespace, *argv]


def list_namespaces() -> list[str]:
    output = run(["ip", "-j", "netns", "list"], check=False).stdout.strip()
    return [entry["name"] for entry in json.loads(output)] if output else []


def list_links() -> list[str]:
    output = run(["ip", "-j", "link", "show"]).stdout.strip()
    return [entry["ifname"] for entry in json.loads(output)] if output else []


def namespace_pids(namespace: str) -> list[int]:
    """Every process whose network namespace is ``namespace`` (survives our own crash)."""
    result = run(["ip", "netns", "pids", namespace], check=False)
    return [int(pid) for pid in result.stdout.split()] if result.returncode == 0 else []


def subnet_in_use(subnet: str) -> str | None:
    """An address or route of the root namespace overlapping ``subnet``, if any."""
    network = ipaddress.ip_network(subnet)
    addresses = json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    for link in addresses:
        for info in link.get("addr_info", []):
            interface = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
            if interface.network.overlaps(network):
                return f"{link['ifname']} has {interface}"
    routes = json.loads(run(["ip", "-j", "-4", "route", "show"]).stdout or "[]")
    for route in routes:
        destination = route.get("dst", "")
        if (
            destination
            and destination != "default"
            and ipaddress.ip_network(destination, strict=False).overlaps(network)
        ):
            return f"route {destination} via {route.get('dev', '?')}"
    return None


def _ns(namespace: str, *argv: str) -> None:
    run(["ip", "-n", namespace, *argv])


def create(topology: Topology, *, routable: bool = False) -> None:
    """Create both namespaces, their links, addresses, routes and firewall rules.

    ``routable``: the master may open connections to the workstation (a cluster on the
    same network or VPN); by default it may not (a laptop behind NAT).
    """
    master, workstation = topology.master_ns, topology.workstation_ns
    for namespace in (master, workstation):
        run(["ip", "netns", "add", namespace])
        _ns(namespace, "link", "set", "lo", "up")

    # root <-> master, then master <-> workstation (created inside the master, so no name
    # of that pair ever appears in the root namespace).
    _veth(None, topology.host_link, master, topology.master_host_link)
    _veth(master, topology.master_ws_link, workstation, topology.ws_link)
    links: tuple[tuple[str | None, str, str], ...] = (
        (None, topology.host_link, topology.host_ip),
        (master, topology.master_host_link, topology.master_host_ip),
        (master, topology.master_ws_link, topology.master_ip),
        (workstation, topology.ws_link, topology.workstation_ip),
    )
    for owner, link, address in links:
        # IPv4 only: a veth otherwise gets an IPv6 link-local address, and the firewall
        # rules below are iptables (IPv4) rules -- the master could reach the workstation
        # at fe80::...%link. Disabled before "up", so no address is ever assigned.
        sysctl = ["sysctl", "-qw", f"net.ipv6.conf.{link}.disable_ipv6=1"]
        run(in_namespace(owner, sysctl) if owner else sysctl, check=False)
        ip = ["ip", "-n", owner] if owner else ["ip"]
        run([*ip, "addr", "add", f"{address}/30", "dev", link])
        run([*ip, "link", "set", link, "up"])

    # A local process dialling a ClusterIP needs *a* route before kube-proxy's OUTPUT DNAT
    # rewrites the destination (connect() fails with "network unreachable" otherwise). A
    # dummy interface is the usual answer (kube-ipvs0), but containers often lack the
    # module. A route via lo works as well and keeps every packet inside the namespace:
    # DNATed packets are re-routed to their endpoint, the rest are dropped by lo. The
    # source is the master's address (lo would pick 127.0.0.1, which may not leave lo).
    _ns(master, "route", "add", SERVICE_CIDR, "dev", "lo", "src", topology.master_ip)

    # The workstation is a laptop behind NAT: nothing from the master may open a
    # connection to it; only replies (and what rides inside the SSH tunnel) get through.
    # A routable lab (``lab up --routable``, for ``up --direct``) leaves this rule out.
    if not routable:
        set_workstation_routable(topology, False)
    # Nor may the master reach into the root namespace (pytest, the user's machine). Match
    # the destination, not "-o": for a DNATed packet (a Service whose endpoint is the
    # root's address) the OUTPUT hook still reports the interface of the original route.
    run(
        in_namespace(
            master,
            [
                "iptables",
                "-w",
                "-A",
                "OUTPUT",
                "-d",
                topology.host_ip,
                "-m",
                "conntrack",
                "--ctstate",
                "NEW",
                "-j",
                "DROP",
            ],
        )
    )


def _nat_rule(topology: Topology) -> list[str]:
    """The one rule that makes the workstation unreachable from the master."""
    return ["INPUT", "-i", topology.ws_link, "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"]


def set_workstation_routable(topology: Topology, routable: bool) -> None:
    """Let the master open connections to the workstation (``True``), or drop them.

    Idempotent: the rule is added once and every copy of it is removed.
    """
    rule = _nat_rule(topology)

    def present() -> bool:
        check = ["iptables", "-w", "-C", *rule]
        return run(in_namespace(topology.workstation_ns, check), check=False).returncode == 0

    if routable:
        while present():
            run(in_namespace(topology.workstation_ns, ["iptables", "-w", "-D", *rule]))
    elif not present():
        run(in_namespace(topology.workstation_ns, ["iptables", "-w", "-A", *rule]))


def create_node(topology: Topology) -> None:
    """The node's namespace, its link to the master, and the routes for the Pod CIDR.

    The node forwards between its Pods' bridge and the master (``ip_forward`` is per
    namespace); the master routes the Pod CIDR to the node, so the apiserver and
    kube-proxy in the master reach Pod addresses directly, as on a cluster whose Pod
    network is routed. The node's default route is the master: Pods reach the apiserver
    at the master's address, and nothing else (the master forwards nothing on).
    """
    master, node = topology.master_ns, topology.node_ns
    run(["ip", "netns", "add", node])
    _ns(node, "link", "set", "lo", "up")
    _veth(master, topology.master_node_link, node, topology.node_master_link)
    for owner, link, address in (
        (master, topology.master_node_link, topology.master_node_ip),
        (node, topology.node_master_link, topology.node_ip),
    ):
        run(in_namespace(owner, ["sysctl", "-qw", f"net.ipv6.conf.{link}.disable_ipv6=1"]))
        _ns(owner, "addr", "add", f"{address}/30", "dev", link)
        _ns(owner, "link", "set", link, "up")
    run(in_namespace(node, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
    _ns(node, "route", "add", "default", "via", topology.master_node_ip)
    _ns(master, "route", "add", topology.pod_cidr, "via", topology.node_ip)


def _veth(namespace: str | None, name: str, peer_namespace: str, peer_name: str) -> None:
    """A veth pair: ``name`` in ``namespace`` (None: root), ``peer_name`` moved to the peer."""
    ip = ["ip", "-n", namespace] if namespace else ["ip"]
    run(
        [
            *ip,
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            peer_name,
            "netns",
            peer_namespace,
        ]
    )


def delete_namespace(namespace: str) -> bool:
    """Delete ``namespace`` if present; its veths (and their root-side peers) go with it."""
    if namespace not in list_namespaces():
        return False
    run(["ip", "netns", "delete", namespace])
    return True


def delete_link(name: str) -> bool:
    if name not in list_links():
        return False
    run(["ip", "link", "delete", name], check=False)
    return True


def dnat_destinations(iptables_save: str, namespace: str, service: str) -> list[str]:
    """Endpoints (``ip:port``) kube-proxy's nat rules DNAT ``namespace/service`` to.

    kube-proxy comments each rule with the service port name: ``ns/svc:port`` for a named
    port, ``ns/svc`` for an unnamed one; iptables-save quotes comments only with spaces.
    """
    wanted = f"{namespace}/{service}"
    destinations = set()
    for line in iptables_save.splitlines():
        if "--comment" not in line or "--to-destination" not in line:
            continue
        comment = line.split("--comment", 1)[1].split()[0].strip('"')
        if comment == wanted or comment.startswith(f"{wanted}:"):
            destinations.add(line.split("--to-destination", 1)[1].split()[0])
    return sorted(destinations)


def _ssh_port_rule(topology: Topology, port: int) -> list[str]:
    return ["INPUT", "-i", topology.master_ws_link, "-p", "tcp", "--dport", str(port), "-j", "DROP"]


def block_tcp_port(topology: Topology, port: int) -> None:
    """Drop packets from the workstation to master:``port`` (a stalled link, not a reset)."""
    run(in_namespace(topology.master_ns, ["iptables", "-w", "-I", *_ssh_port_rule(topology, port)]))


def unblock_tcp_port(topology: Topology, port: int) -> None:
    """Undo :func:`block_tcp_port` (every copy of the rule, so it is idempotent)."""
    rule = _ssh_port_rule(topology, port)
    while (
        run(
            in_namespace(topology.master_ns, ["iptables", "-w", "-C", *rule]), check=False
        ).returncode
        == 0
    ):
        run(in_namespace(topology.master_ns, ["iptables", "-w", "-D", *rule]))
