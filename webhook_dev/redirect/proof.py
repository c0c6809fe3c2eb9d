"""The proof that a redirect works: dry-run creates the webhook's rules match, seen arriving.

``up`` prints ``ready`` only once a call the apiserver made really reached the local code:
the endpoints were accepted, kube-proxy or the endpoint resolver picked them up, the
transport carried the connection and TLS verified against the ``caBundle``. A dry run
stores nothing. ``failurePolicy: Ignore`` would hide a call that never arrived, so
arrival is watched at the proxy (this object is one more subscriber on its hook) rather
than inferred from the apiserver's answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from webhook_dev.errors import ClusterError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect import plan_builder, probe_objects
from webhook_dev.redirect.plan_builder import Snapshot
from webhook_dev.reviews.exchange import Exchange

TIMEOUT_SECONDS = 30.0
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
        self._awaited: dict[str, asyncio.Future[float]] = {}

    def on_exchange(self, exchange: Exchange) -> None:
        name = (exchange.request.get("name") or "") if exchange.request else ""
        waiter = self._awaited.get(name)
        if waiter is not None and not waiter.done():
            waiter.set_result(time.monotonic())

    async def prove(self, snapshot: Snapshot, stopping: asyncio.Event) -> float | None:
        """Round trip in seconds of a call that reached the proxy; ``None`` when none did.

        Says why on the console when it cannot: no resource to dry-run, or no arrival
        within :data:`TIMEOUT_SECONDS` (the apiserver cannot call through the transport).
        """
        namespaces = await asyncio.to_thread(self.cluster.list, "/api/v1/namespaces")
        candidates: list[probe_objects.ProbeObject] = []
        for ref in snapshot.entries:
            entry = plan_builder.entry_of(snapshot, ref)
            candidates = probe_objects.probe_objects(entry, namespaces)
            if candidates:
                break
        if not candidates:
            self.say(
                "ready (no probe: the rules match no resource we can dry-run); "
                "waiting for the first real call"
            )
            return None
        # kube-proxy and the apiserver's endpoint cache pick up the new endpoints
        # asynchronously, and failurePolicy Ignore hides a call that did not arrive: so try
        # again until one does, rotating namespaces in case another webhook refuses there.
        deadline = time.monotonic() + TIMEOUT_SECONDS
        round_trip = None
        refusals: set[str] = set()
        attempt = 0
        candidate = candidates[0]
        while round_trip is None and time.monotonic() < deadline and not stopping.is_set():
            candidate = candidates[attempt % len(candidates)]
            attempt += 1
            round_trip = await self._dry_run(candidate, refusals)
            if round_trip is None and self._should_reconnect():
                self.reconnects += 1
                self._answered_elsewhere = 0
                self.say(
                    "probe: dry runs are admitted without reaching your code (the apiserver "
                    "may keep a connection to an in-cluster Pod); renewing the webhook's "
                    "caBundle so it reconnects"
                )
                assert self.reconnect is not None
                await asyncio.to_thread(self.reconnect)
        if round_trip is not None:
            # The first call to arrive may have paid for new connections along the way; a
            # second one says what a call costs now.
            return await self._dry_run(candidate, refusals) or round_trip
        if not stopping.is_set():
            self.unreached = True
        if self.unreached and self.warn_unreached:
            self.say(
                "warning: the probe's dry-run creates did not reach your code within "
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

    async def _dry_run(
        self, candidate: probe_objects.ProbeObject, refusals: set[str]
    ) -> float | None:
        """One dry-run create; its round trip in seconds if it reached the proxy in time."""
        seen: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._awaited[candidate.name] = seen
        started = time.monotonic()
        answered = True
        try:
            await asyncio.to_thread(
                self.cluster.create, candidate.collection, candidate.manifest, dry_run=True
            )
        except ClusterError as error:
            # A webhook's denial is an answer too: if it is not ours, another endpoint
            # (an in-cluster Pod on a kept-alive connection) gave it, as for an admission.
            answered = "denied the request" in error.message
            if error.message not in refusals:
                refusals.add(error.message)
                self.say(f"probe: the apiserver refused the dry run: {error.message}")
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
            self._awaited.pop(candidate.name, None)
