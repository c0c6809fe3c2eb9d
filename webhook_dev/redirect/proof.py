"""The proof that a redirect works: calls the apiserver must send to the webhook, seen arriving.

``up`` prints ``ready`` only once a call the apiserver made really reached the local code:
the endpoints were accepted, kube-proxy or the endpoint resolver picked them up, the
transport carried the connection and TLS verified against the ``caBundle``. A dry run
stores nothing. ``failurePolicy: Ignore`` would hide a call that never arrived, so
arrival is watched at the proxy (this object is one more subscriber on its hook) rather
than inferred from the apiserver's answer.

The call is a dry-run create the admission rules match; when only CRD conversions are
redirected (``--crd`` alone, or rules we cannot dry-run), it is a call that makes the
apiserver convert (:func:`~webhook_dev.redirect.probe_objects.conversion_probe`): a read of
an existing object in a non-storage version, else a dry-run create of a minimal object in
one. A schema that refuses the minimal object does so before any conversion; the probe
then says the path is not proven instead of waiting for a call that cannot come.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webhook_dev.errors import ClusterError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect import conversions, plan_builder, probe_objects
from webhook_dev.redirect.plan import Json
from webhook_dev.redirect.plan_builder import Snapshot
from webhook_dev.reviews import kinds
from webhook_dev.reviews.exchange import Exchange

TIMEOUT_SECONDS = 30.0
MIN_ATTEMPTS = 2  # calls the probe makes even when the first used up TIMEOUT_SECONDS
# The apiserver answers a dry run only after our webhook answered it, so when the dry run
# returns, the call has reached the proxy or never will; this covers the hook's scheduling.
ARRIVAL_GRACE_SECONDS = 0.25
PAUSE_SECONDS = 0.1
# Dry runs the apiserver answered without calling us, in a row, before we make it reconnect:
# more than kube-proxy's usual delay in picking up the new endpoints (its minSyncPeriod is
# 1 s), fewer than a user would wait for.
ANSWERED_ELSEWHERE_BEFORE_RECONNECT = 8
MAX_RECONNECTS = 3

Say = Callable[[str], None]
#: What a call is about, as the exchange shows it: the review's kind and the object's name.
Key = tuple[str, str]


@dataclass(frozen=True)
class ProbeCall:
    """One call to the apiserver that must reach the webhook, and how to recognise it."""

    key: Key
    send: Callable[[], Any]  # blocking; run in a thread
    what: str  # for the console: "a dry-run create of Pod default/x", ...
    # A refusal that does not name the conversion webhook came before it (the CRD's
    # schema): retrying cannot help.
    refused_before_the_webhook: Callable[[str], bool] | None = None


def _not_about_conversion(message: str) -> bool:
    """A refusal of a dry-run create that the conversion webhook did not cause (its
    failures read "conversion webhook for <group/version, Kind> failed: ...")."""
    return "conversion webhook" not in message


class Unprovable(Exception):
    """The apiserver refuses the probe before calling the webhook (not a path problem)."""


def exchange_keys(exchange: Exchange) -> list[Key]:
    """The objects a call is about: the AdmissionReview's ``request.name``, or each object
    of a ConversionReview's ``request.objects``."""
    kind = exchange.review_kind
    if kind is None:  # the door refused it: no review to recognise
        return []
    request = exchange.request
    if kind is kinds.CONVERSION:
        return [
            ("conversion", str((item.get("metadata") or {}).get("name", "")))
            for item in request.get("objects") or []
            if isinstance(item, dict)
        ]
    return [("admission", str(request.get("name") or ""))]


class PathProof:
    """Subscriber on the serving stack, and the dry runs whose arrival it waits for."""

    def __init__(
        self,
        cluster: Cluster,
        say: Say,
        *,
        warn_unreached: bool = True,
        reconnect: Callable[[], None] | None = None,
    ) -> None:
        """``warn_unreached=False``: the caller turns a probe that saw nothing arrive
        (:attr:`unreached`) into an error of its own instead of a warning.

        ``reconnect`` makes the apiserver open new connections to the webhook (see
        :func:`webhook_dev.redirect.plan.reconnect_changes`); it is called when dry runs
        keep being answered without reaching us: the apiserver still calls an in-cluster
        Pod over a connection it opened before the endpoints changed.
        """
        self.cluster = cluster
        self.say = say
        self.warn_unreached = warn_unreached
        self.reconnect = reconnect
        self.unreached = False  # dry runs were sent, none arrived in time
        self.reconnects = 0
        self._answered_elsewhere = 0  # in a row
        self._awaited: dict[Key, asyncio.Future[float]] = {}
        self.proved_by: ProbeCall | None = None  # the call that arrived, once one did

    def on_exchange(self, exchange: Exchange) -> None:
        for key in exchange_keys(exchange):
            waiter = self._awaited.get(key)
            if waiter is not None and not waiter.done():
                waiter.set_result(time.monotonic())

    async def prove(self, snapshot: Snapshot, stopping: asyncio.Event) -> float | None:
        """Round trip in seconds of a call that reached the proxy; ``None`` when none did.

        Says why on the console when it cannot: no resource to dry-run, or no arrival
        within :data:`TIMEOUT_SECONDS` (the apiserver cannot call through the transport).
        """
        candidates = await asyncio.to_thread(self._admission_calls, snapshot)
        if not candidates and snapshot.crds:
            candidates = await asyncio.to_thread(self._conversion_calls, snapshot)
        if not candidates:
            self.say(
                "ready (no probe: the rules match no resource we can dry-run, and no "
                "redirected CRD serves a version to convert to); waiting for the first real call"
            )
            return None
        try:
            return await self._until_one_arrives(candidates, stopping)
        except Unprovable as refusal:
            self.say(
                f"ready, but the path is not proven: {refusal}; the first real call will "
                "show whether the cluster reaches your code"
            )
            return None

    def _admission_calls(self, snapshot: Snapshot) -> list[ProbeCall]:
        if not snapshot.entries:
            return []
        namespaces = self.cluster.list("/api/v1/namespaces")
        for ref in snapshot.entries:
            entry = plan_builder.entry_of(snapshot, ref)
            objects = probe_objects.probe_objects(entry, namespaces)
            if objects:
                return [self._dry_run_create(obj) for obj in objects]
        return []

    def _dry_run_create(self, obj: probe_objects.ProbeObject) -> ProbeCall:
        namespace = obj.manifest["metadata"].get("namespace")
        return ProbeCall(
            key=("admission", obj.name),
            send=functools.partial(self.cluster.create, obj.collection, obj.manifest, dry_run=True),
            what=f"a dry-run create of {obj.manifest['kind']} {namespace}/{obj.name}",
        )

    def _conversion_calls(self, snapshot: Snapshot) -> list[ProbeCall]:
        for name, crd in snapshot.crds.items():
            call = self._conversion_call(name, crd)
            if call is not None:
                return [call]
        return []

    def _conversion_call(self, name: str, crd: Json) -> ProbeCall | None:
        """A read that converts an existing object, else a dry-run create that converts.

        The object to read is found in the *storage* version, which needs no conversion,
        so finding it does not depend on the path being proved.
        """
        versions = conversions.versions(crd)
        if not versions.other_served:
            return None
        listed = self.cluster.request(
            "GET", versions.collection(versions.storage), query={"limit": "1"}
        )
        stored = (listed.get("items") or [None])[0]
        probe = probe_objects.conversion_probe(versions, stored)
        if probe is None:
            return None
        key = ("conversion", probe.name)
        if probe.manifest is None:
            return ProbeCall(
                key=key,
                send=functools.partial(self.cluster.get, probe.path),
                what=f"a read of {versions.kind} {probe.name} as {probe.version}",
            )
        return ProbeCall(
            key=key,
            send=functools.partial(self.cluster.create, probe.path, probe.manifest, dry_run=True),
            what=f"a dry-run create of a {versions.kind} in {probe.version} ({name} had "
            "no object to read)",
            refused_before_the_webhook=_not_about_conversion,
        )

    async def _until_one_arrives(
        self, candidates: list[ProbeCall], stopping: asyncio.Event
    ) -> float | None:
        # kube-proxy and the apiserver's endpoint cache pick up the new endpoints
        # asynchronously, and failurePolicy Ignore hides a call that did not arrive: so try
        # again until one does, rotating namespaces in case another webhook refuses there.
        deadline = time.monotonic() + TIMEOUT_SECONDS
        round_trip = None
        refusals: set[str] = set()
        attempt = 0
        candidate = candidates[0]
        # At least two calls, whatever the clock says: a conversion probe may wait out the
        # apiserver's whole 30 s conversion timeout on a connection that never opened (the
        # endpoint not programmed yet), which left a window of 30 s no second try.
        while (
            round_trip is None
            and (time.monotonic() < deadline or attempt < MIN_ATTEMPTS)
            and not stopping.is_set()
        ):
            candidate = candidates[attempt % len(candidates)]
            attempt += 1
            round_trip = await self._call(candidate, refusals)
            if round_trip is None and self._should_reconnect():
                self.reconnects += 1
                self._answered_elsewhere = 0
                self.say(
                    f"probe: {candidate.what} is answered without reaching your code (the "
                    "apiserver may keep a connection to an in-cluster Pod); renewing the "
                    "caBundle so it reconnects"
                )
                assert self.reconnect is not None
                await asyncio.to_thread(self.reconnect)
        if round_trip is not None:
            # The first call to arrive may have paid for new connections along the way; a
            # second one says what a call costs now.
            self.proved_by = candidate
            return await self._call(candidate, refusals) or round_trip
        if not stopping.is_set():
            self.unreached = True
        if self.unreached and self.warn_unreached:
            self.say(
                f"warning: the probe ({candidate.what}) did not reach your code within "
                f"{TIMEOUT_SECONDS:.0f} s; the apiserver cannot call through the tunnel "
                "(see `webhook-dev doctor`)"
            )
        return None

    def _should_reconnect(self) -> bool:
        return (
            self.reconnect is not None
            and self.reconnects < MAX_RECONNECTS
            and self._answered_elsewhere >= ANSWERED_ELSEWHERE_BEFORE_RECONNECT
        )

    async def _call(self, candidate: ProbeCall, refusals: set[str]) -> float | None:
        """One probe call; its round trip in seconds if it reached the proxy in time.

        :raises Unprovable: the apiserver refused it before calling the webhook.
        """
        seen: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._awaited[candidate.key] = seen
        started = time.monotonic()
        answered = True
        try:
            await asyncio.to_thread(candidate.send)
        except ClusterError as error:
            # A webhook's denial is an answer too: if it is not ours, another endpoint
            # (an in-cluster Pod on a kept-alive connection) gave it, as for an admission.
            answered = "denied the request" in error.message
            refused_early = candidate.refused_before_the_webhook
            if refused_early is not None and refused_early(error.message) and not seen.done():
                self._awaited.pop(candidate.key, None)
                raise Unprovable(
                    f"the apiserver refused {candidate.what}: {error.message}"
                ) from error
            if error.message not in refusals:
                refusals.add(error.message)
                self.say(f"probe: the apiserver refused the probe: {error.message}")
        try:
            arrived = (await asyncio.wait_for(seen, ARRIVAL_GRACE_SECONDS)) - started
            self._answered_elsewhere = 0
            return arrived
        except TimeoutError:
            # Admitted, yet not by us: another endpoint answered (or Ignore hid a failure).
            self._answered_elsewhere = self._answered_elsewhere + 1 if answered else 0
            await asyncio.sleep(PAUSE_SECONDS)
            return None
        finally:
            self._awaited.pop(candidate.key, None)
