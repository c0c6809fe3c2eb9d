"""The in-cluster backend that answers a redirected conversion your code cannot answer.

``up`` redirects a Service's CRD conversions with the Service. Its Pods keep running (the
redirect only takes the selector away), so while one of them was Ready before ``up``,
the proxy can hand it a ConversionReview the local code could not answer
(:mod:`webhook_dev.serving.fallback` says when and how it is marked). Here the session
finds that backend — a Pod the Service's selector picks, chosen again if it goes away —
and, for each CRD calling the Service, where the apiserver would call it: the CRD's
path and port, verified with the CRD's own ``caBundle`` (as it was before ``up`` appended
ours) against the Service's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from webhook_dev.errors import ClusterError, PreflightError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect import conversions
from webhook_dev.redirect.plan_builder import Snapshot, service_target
from webhook_dev.redirect.shadow import ProductionReach
from webhook_dev.serving.fallback import ConversionFallback
from webhook_dev.tunnel.pod_forward import selected_backend


@dataclass
class Fallback:
    """What the session keeps open while the fallback serves; close it after the stack."""

    reach: ProductionReach
    fallback: ConversionFallback

    def describe(self) -> str:
        """The Pod that answers now (chosen again if the first went away)."""
        return ", ".join(self.reach.describe())

    async def close(self) -> None:
        await self.fallback.close()
        await self.reach.close()


async def open_fallback(
    cluster: Cluster, snapshot: Snapshot, say: Callable[[str], None]
) -> Fallback | None:
    """The fallback for ``snapshot``'s redirected conversions that call its Service, or
    ``None`` (and a note saying why) when no in-cluster Pod backs the Service."""
    target = service_target(snapshot)
    if target is None or snapshot.service is None:
        return None
    calling = [
        (name, crd)
        for name, crd in snapshot.crds.items()
        if conversions.calls_service(crd, target.namespace, target.name)
    ]
    if not calling:
        return None
    reach = ProductionReach(cluster, say, choose=selected_backend)
    addresses = {}
    try:
        for name, crd in calling:
            webhook = {"clientConfig": conversions.client_config(crd)}
            found = await reach.target(name, f"conversion of {name}", webhook)
            assert found.production is not None  # only side effects leave it out
            addresses[found.path] = found.production
    except (PreflightError, ClusterError) as error:  # no Pod, or may not list Pods
        await reach.close()
        say(f"note: no in-cluster backend answers a conversion your code cannot: {error.message}")
        return None
    for described in reach.describe():
        say(
            "conversions your code cannot answer are answered by the in-cluster "
            f"{described} (marked answered-in-cluster)"
        )
    return Fallback(reach, ConversionFallback(addresses))
