"""``up --direct`` and ``doctor --direct``: learn the address and allow-list, say them."""

from __future__ import annotations

from collections.abc import Sequence

from webhook_dev.commands.options import say
from webhook_dev.kube.cluster import Cluster
from webhook_dev.tunnel import direct_addresses
from webhook_dev.tunnel.direct import DirectSpec, DirectTransport


def direct_spec(
    context: str | None,
    kubeconfig: str | None,
    address: str | None,
    allow_from: Sequence[str],
    port: int,
) -> DirectSpec:
    """Read the cluster's addresses (nothing changes) and print what was chosen and why.

    :raises PreflightError: no address or allow-list can be chosen.
    """
    cluster = Cluster.connect(context, kubeconfig)
    learned = direct_addresses.learn(cluster)
    spec = direct_addresses.plan_direct(learned, address=address, allow_from=allow_from, port=port)
    say(f"direct: listening on {spec.address} (from {spec.address_because})")
    say(f"direct: accepting connections only from {spec.allowed} ({spec.allowed_because})")
    return spec


def unreachable_hint(transport: DirectTransport) -> str:
    """What to check when the cluster's calls never arrived."""
    spec = transport.spec
    return (
        f"check that a firewall on this machine lets {spec.allowed} connect to TCP "
        f"{transport.port} on {spec.address}; that {spec.address} is the address the "
        "cluster reaches you at (else pass --address IP); "
        f"{transport.refused} connection(s) came from elsewhere and were refused "
        "(widen with --allow-from CIDR); or use --ssh DEST"
    )
