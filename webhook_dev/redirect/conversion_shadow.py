"""Shadow mode for conversion webhooks: production converts, the local code is compared.

The apiserver calls exactly one conversion webhook per CRD, so no copy can stand beside it
(as shadow mode's admission copies do). Instead :class:`ConversionSweep` makes the calls
itself, from this machine, changing nothing in the cluster: it lists the CRD's objects in
their *storage* version (what the apiserver reads from etcd, so listing needs no conversion)
and, for each object and each other served version, builds the ConversionReview the
apiserver would send (:func:`webhook_dev.reviews.conversion.new_review`) and hands it to
the stack's shadow route (:meth:`~webhook_dev.serving.shadow.Shadower.compare_review`):
production and the local code each convert it, compared object by object
(:func:`webhook_dev.reviews.conversion.compare`), shown and recorded like every call.

It sweeps once when ``up`` is ready and again after each reload of the local code, so
each edit is compared against every stored object. What it covers: conversions *from* the
storage version (reads in other versions, the common path); conversions *to* it (writes in
another version) are the same functions run backwards and are not exercised, nor are
objects stored in an older version (listing them converts them through production first).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from webhook_dev.errors import ClusterError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect.plan import Json
from webhook_dev.redirect.shadow import ProductionReach
from webhook_dev.reviews import conversion
from webhook_dev.reviews.exchange import Event, GenerationReady
from webhook_dev.reviews.shadow import target_key
from webhook_dev.serving.shadow import Shadower, ShadowTarget

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
#: A conversion has no timeoutSeconds; the apiserver's own budget for one is 30 s.
CONVERSION_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class ConvertedCrd:
    """One CRD whose conversion is shadowed: where its objects are, and where they go."""

    name: str
    group: str
    plural: str
    storage: str  # the storage version's name (v1)
    targets: tuple[str, ...]  # the other served versions' names
    review_version: str  # the ConversionReview apiVersion the CRD accepts
    target: ShadowTarget


def converted_crd(crd: Json, target: ShadowTarget) -> ConvertedCrd | None:
    """What to sweep for ``crd``; ``None`` without a webhook or a second served version."""
    spec = crd.get("spec") or {}
    conversion_spec = spec.get("conversion") or {}
    if conversion_spec.get("strategy") != "Webhook":
        return None
    versions = spec.get("versions") or []
    storage = next((v["name"] for v in versions if v.get("storage")), None)
    served = tuple(v["name"] for v in versions if v.get("served") and v["name"] != storage)
    if storage is None or not served:
        return None
    accepted = (conversion_spec.get("webhook") or {}).get("conversionReviewVersions") or ["v1"]
    review_version = "apiextensions.k8s.io/" + ("v1" if "v1" in accepted else "v1beta1")
    return ConvertedCrd(
        name=crd["metadata"]["name"],
        group=spec["group"],
        plural=spec["names"]["plural"],
        storage=storage,
        targets=served,
        review_version=review_version,
        target=target,
    )


class ConversionSweep:
    """Sweeps a session's CRDs through both conversions; a subscriber (reloads re-sweep)."""

    def __init__(self, cluster: Cluster, shadower: Shadower, say: Callable[[str], None]) -> None:
        self.cluster = cluster
        self.shadower = shadower
        self.say = say
        self.crds: list[ConvertedCrd] = []
        self._task: asyncio.Task[None] | None = None
        self._again = False

    async def prepare(self, names: list[str], reach: ProductionReach) -> None:
        """Read each CRD and reach its production conversion webhook."""
        for name in names:
            crd = await asyncio.to_thread(self.cluster.get, f"{CRDS}/{name}")
            webhook = ((crd.get("spec") or {}).get("conversion") or {}).get("webhook") or {}
            production = {
                "clientConfig": webhook.get("clientConfig") or {},
                "timeoutSeconds": CONVERSION_TIMEOUT_SECONDS,
                "sideEffects": "None",  # a conversion must have none
            }
            if not production["clientConfig"]:
                continue
            key = target_key("CustomResourceDefinition", name, "conversion")
            target = await reach.target(key, f"conversion of {name}", production)
            found = converted_crd(crd, target)
            if found is not None:
                self.shadower.add_target(target)
                self.crds.append(found)

    def start(self) -> None:
        """Sweep now (or once more after the sweep under way)."""
        if not self.crds:
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._sweep_until_done())

    def on_event(self, event: Event) -> None:
        if isinstance(event, GenerationReady) and self._task is not None:
            self.start()  # the new code is compared against every stored object

    async def _sweep_until_done(self) -> None:
        while True:
            self._again = False
            for crd in self.crds:
                await self._sweep(crd)
            if not self._again:
                return

    async def _sweep(self, crd: ConvertedCrd) -> None:
        try:
            listed = await asyncio.to_thread(
                self.cluster.list, f"/apis/{crd.group}/{crd.storage}/{crd.plural}"
            )
        except ClusterError as error:
            self.say(f"warning: cannot list {crd.name} to compare conversions: {error.message}")
            return
        compared = differed = 0
        for obj in listed:
            obj.setdefault("apiVersion", f"{crd.group}/{crd.storage}")
            for version in crd.targets:
                review = conversion.new_review(
                    [obj],
                    f"{crd.group}/{version}",
                    uid=str(uuid.uuid4()),
                    api_version=crd.review_version,
                )
                exchange = await self.shadower.compare_review(review, crd.target)
                call = exchange.shadow
                if call is not None and call.compared:
                    compared += 1
                    differed += call.differed
        targets = ", ".join(crd.targets)
        self.say(
            f"conversion of {crd.name}: {len(listed)} stored objects to {targets}: "
            f"{compared} compared, {differed} differed"
        )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
