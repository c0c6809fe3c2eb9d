"""``webhook-dev up``: one session from preflight to restore, in phases.

The order is what makes it safe, and each phase returns what the next one needs:

1. :meth:`Session._read_cluster` — read and check (Service shape, port, holder lock,
   leftovers); no change;
2. :meth:`Session._serve_locally` — the transport gets ready and names the address the
   apiserver will dial, the app is served behind TLS with a certificate for the
   Service's names (and that address for ``url:`` entries), and the transport starts
   carrying connections to it, verified (for SSH: ``GatewayPorts``); still no change in
   the cluster;
3. :meth:`Session._clear_leftover` — with ``--force``, restore what a stale session left;
4. :meth:`Session._redirect` — take the Lease, write the journal (locally, then in the
   cluster), apply the plan object by object (see :mod:`webhook_dev.redirect.apply`);
5. prove the path with dry-run creates (:mod:`webhook_dev.redirect.proof`), print ``ready``;
6. :meth:`Session._heartbeat_until_stopped` — renew the Lease (publishing transport
   health), re-append our CA if a CA injector rewrites ``caBundle``;
7. on Ctrl-C, SIGTERM, or any failure after step 4: restore from the journal.

The transport is given, not chosen here: the session needs only
:class:`~webhook_dev.tunnel.transport.Transport`'s address, health and close.

With a scope (``--only-namespace``/``--only-user``/``--only-group``) the same phases run a
*personal* redirect (:mod:`webhook_dev.redirect.personal_plan`): the preflight also checks
the scope is free (:mod:`webhook_dev.redirect.personal`), the certificate names the dialled
IP (the copy calls it by ``url:``), the plan is the copy and the exclusion, and the probe
dry-runs what the copy matches.

With ``--shadow`` the same phases run shadow mode (:mod:`webhook_dev.redirect.shadow_plan`):
production keeps deciding; the plan inserts a copy entry beside each production entry,
the stack answers the copies at once and compares off the answer's path (its
``shadow`` route), and production is reached from here (:mod:`webhook_dev.redirect.shadow`).

A ``kill -9`` anywhere leaves the journal, from which ``webhook-dev down`` restores — tests
kill ``up`` after every step through ``WEBHOOK_DEV_FAULT_AFTER=<step>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from webhook_dev.addresses import is_ip_address
from webhook_dev.errors import ClusterError, UnreachableError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.kube.namespace_labels import NamespaceLabels
from webhook_dev.redirect import callers, interception, journal, personal_plan, shadow_plan
from webhook_dev.redirect import plan_builder as redirect
from webhook_dev.redirect.apply import RestoreReport, apply_plan, reappend_ca
from webhook_dev.redirect.conversion_fallback import Fallback, open_fallback
from webhook_dev.redirect.conversion_shadow import ConversionSweep
from webhook_dev.redirect.discovery import (
    check_not_held,
    discover,
    preflight_warnings,
    subject_of,
)
from webhook_dev.redirect.personal import Claim, check_scope_free, prepare_claim, recheck_after_lock
from webhook_dev.redirect.plan import (
    ChangeKind,
    ObjectCreate,
    ObjectRef,
    RedirectPlan,
    reconnect_changes,
)
from webhook_dev.redirect.plan_builder import Snapshot
from webhook_dev.redirect.proof import TIMEOUT_SECONDS, PathProof
from webhook_dev.redirect.restore import restore_from_journal
from webhook_dev.redirect.scope import Scope
from webhook_dev.redirect.selection import Selection
from webhook_dev.redirect.shadow import ProductionReach, prepare_shadowing, side_effect_notes
from webhook_dev.redirect.shadow_plan import ShadowedEntry, Shadowing
from webhook_dev.reviews.shadow import ShadowSpec
from webhook_dev.serving.spec import ServingSpec
from webhook_dev.serving.stack import ServingStack
from webhook_dev.subscribers.call_stats import CallStats
from webhook_dev.subscribers.live_view import SessionFacts
from webhook_dev.tls import certs
from webhook_dev.tls.authority import LocalAuthority
from webhook_dev.tls.cert_dir import write_cert_dir
from webhook_dev.tunnel.transport import CreatedObject, CreatesObjects, DialAddress, Transport

FAULT_ENV = "WEBHOOK_DEV_FAULT_AFTER"

Say = Callable[[str], None]


@dataclass
class UpOptions:
    """Everything ``up`` needs besides its transport; the CLI fills it from flags."""

    serving: ServingSpec  # what answers, recording, reload, inspector: as for ``serve``
    selection: Selection  # --webhook, --service, --crd: what to redirect
    context: str | None = None
    kubeconfig: str | None = None
    port: int = 0
    keep_failure_policy: bool = False
    timeout_seconds: int = 5
    force: bool = False
    probe: bool = True
    # A probe that sees no call arrive restores and raises UnreachableError instead of
    # warning (``--direct``: nothing else would tell the user the cluster cannot dial us).
    require_proof: bool = False
    # controller-runtime's cert dir: tls.crt/tls.key from our CA, trusted for the upstream.
    upstream_cert_dir: Path | None = None
    scope: Scope | None = None  # a personal redirect: only these namespaces/requesters
    # Shadow mode: production decides, the local code answers the same calls, compared.
    shadow: ShadowSpec | None = None
    subscribers: list[Any] = field(default_factory=list)
    # Stages each exchange passes before the subscribers (``--policy``'s evaluation); the
    # session puts the request Namespace's labels first when it records or evaluates.
    stages: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class Found:
    """Phase 1: the cluster, what to redirect, and a stale session's journal if ``--force``."""

    cluster: Cluster
    snapshot: Snapshot
    subject: journal.Subject
    leftover: journal.Journal | None
    claim: Claim | None = None  # a personal redirect's names and owner
    shadowing: Shadowing | None = None  # up --shadow: whose copies, of which calls


@dataclass(frozen=True)
class Local:
    """Phase 2: the stack serving here, and where the apiserver dials to reach it."""

    stack: ServingStack
    address: DialAddress
    ca_pem: bytes


class Session:
    """A running ``up``: owns the stack, the transport's use, the journal and the heartbeat."""

    def __init__(
        self,
        options: UpOptions,
        transport: Transport,
        say: Say,
        on_serving: Callable[[ServingStack], Awaitable[None]] | None = None,
    ) -> None:
        """``on_serving`` runs once the local stack serves (e.g. to start the inspector),
        so nothing extra starts for an ``up`` that fails its preflight."""
        self.options = options
        self.transport = transport
        self.say = say
        self._on_serving = on_serving
        self.session_id = uuid.uuid4().hex
        self.holder = journal.holder_identity()
        self.call_stats = CallStats()  # published in the record's health
        self._subject: journal.Subject | None = None  # for the live view
        self._stack: ServingStack | None = None  # as soon as it exists, for close()
        self._namespace_labels: NamespaceLabels | None = None
        self._local: Local | None = None  # for the live view
        self._lost_lease = False
        self._authority: LocalAuthority | None = None  # kept to renew the upstream cert dir
        self._snapshot: Snapshot | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._changing = False  # from the journal on, stop politely instead of cancelling
        self._shadowed: list[ShadowedEntry] = []  # up --shadow: the entries the plan copies
        self._reach: ProductionReach | None = None  # and how production is reached
        self._sweep: ConversionSweep | None = None  # and the CRD conversions compared
        self._fallback: Fallback | None = None  # a redirect's in-cluster conversions

    def facts(self) -> SessionFacts | None:
        """For the live view: what is redirected, and how the transport is doing."""
        if self._local is None:
            return None
        return SessionFacts(
            subject=str(self._subject) if self._subject else "(preparing)",
            tunnel=str(self.transport.state),
            endpoint=f"{self._local.address} → 127.0.0.1:{self._local.stack.port}",
            recording=str(self.options.serving.record) if self.options.serving.record else None,
            reconnects=self.transport.reconnects,
            conversions=tuple(self._snapshot.crds) if self._snapshot else (),
            conversion_fallback=self._fallback.describe() if self._fallback else None,
            shadow=self.shadow_summary().removeprefix("shadow: ") if self.options.shadow else None,
        )

    def shadow_summary(self) -> str:
        """``shadow: N compared, M differed (K noisy)``; ``""`` when not shadowing."""
        stack = self._stack
        if stack is None or stack.shadow is None:
            return ""
        return stack.shadow.counts.summary()

    def request_stop(self) -> None:
        """Ctrl-C / SIGTERM: before any change, abort at once; after, restore and leave."""
        if self._stop.is_set():
            self.say("still restoring the cluster; please wait")
            return
        self._stop.set()
        if not self._changing and self._task is not None:
            self._task.cancel()

    async def run(self) -> RestoreReport | None:
        """Run until :meth:`request_stop`; returns the restore report (None: nothing changed)."""
        self._task = asyncio.current_task()
        found = await self._read_cluster()
        record: journal.Journal | None = None
        if isinstance(self.transport, CreatesObjects):
            # Protocol 7: what the transport creates (the relay) must not meet the
            # webhooks it redirects, so they exclude it first, from the journal on.
            snapshot = await self._clear_leftover(found)
            # The relay is journaled before it exists too, so down removes it after a
            # kill -9 at any point (removing an object that never came is a no-op).
            planned = self.transport.planned_objects()
            shield = RedirectPlan(
                changes=interception.shield_changes(
                    snapshot, _created(planned), self.transport.shield_label
                )
            )
            record = await self._take_lock(
                found, snapshot, RedirectPlan(shield.changes, _adopted(planned))
            )
            self._changing = True
        try:
            if record is not None:
                await asyncio.to_thread(_journal_then_apply, found.cluster, record, shield)
                fault_point("shield")
            local = await self._serve_locally(found)
            if record is None:
                snapshot = await self._clear_leftover(found)
                record = await self._take_lock(found, snapshot, self._plan(found, snapshot, local))
                self._changing = True
            else:  # the lock and the shield are ours already: the whole plan joins them
                plan = self._plan(found, snapshot, local)
                plan.changes[:0] = record.plan.changes
                record = replace(record, plan=plan, tunnel=self.transport.describe())
            self._snapshot = snapshot
            await self._serve_shadow(found.cluster, snapshot)
            await self._serve_conversion_fallback(found.cluster, snapshot)
            await self._redirect(found.cluster, record)
            if self.options.probe and not self._stop.is_set():
                await self._prove(
                    found.cluster,
                    _probed(snapshot, record.plan, found.claim, found.shadowing),
                    record.plan,
                )
            fault_point("ready")
            if self._sweep is not None:
                self._sweep.start()
            await self._heartbeat_until_stopped(found.cluster, record)
        finally:
            report = None
            if record is not None and not self._lost_lease:
                self.say("restoring the cluster")
                report = await asyncio.to_thread(
                    restore_from_journal, found.cluster, record, self.say
                )
        return report

    async def close(self) -> None:
        if self._sweep is not None:
            await self._sweep.close()
        await self.transport.close()
        if self._stack is not None:
            await self._stack.close()
        if self._reach is not None:  # after the stack: its comparisons in flight use them
            await self._reach.close()
        if self._fallback is not None:  # likewise for the calls in flight
            await self._fallback.close()
        if self._namespace_labels is not None:
            self._namespace_labels.close()

    # --- phases ---------------------------------------------------------------------------

    async def _read_cluster(self) -> Found:
        options = self.options
        cluster = await asyncio.to_thread(Cluster.connect, options.context, options.kubeconfig)
        snapshot = await asyncio.to_thread(
            discover, cluster, options.selection, whole_service=self._whole_service
        )
        redirect.validate_snapshot(snapshot)
        subject = subject_of(snapshot)
        claim = None
        shadowing = None
        warnings = preflight_warnings(snapshot)
        if options.shadow is not None:
            shadowing, subject = await asyncio.to_thread(
                prepare_shadowing, cluster, subject, options.scope or Scope()
            )
            self.holder = f"{shadowing.owner} ({self.holder})"
        elif options.scope:
            claim = await asyncio.to_thread(
                prepare_claim, cluster, snapshot, subject, options.scope, options.force
            )
            subject, warnings = claim.subject, [*warnings, *claim.warnings]
            self.holder = f"{claim.owner} ({self.holder})"
        else:
            await asyncio.to_thread(
                check_scope_free, cluster, snapshot.entries, None, own_record=subject.object_name
            )
        leftover = await asyncio.to_thread(check_not_held, cluster, subject, options.force)
        for warning in warnings:
            self.say(f"warning: {warning}")
        self.say(callers.heading(snapshot))
        for line in callers.caller_lines(snapshot, self._treatment()):
            self.say(f"  {line}")
        scope = f" for {options.scope.describe()} only" if options.scope else ""
        redirected = [*map(str, snapshot.entries)]
        if self._whole_service:
            redirected += [f"conversion of {name}" for name in snapshot.crds]
        verb = "shadowing" if options.shadow is not None else "redirecting"
        self.say(f"{verb} {', '.join(redirected)}{scope} (context {cluster.context_name})")
        if options.shadow is not None:
            self.say(
                "production keeps deciding; your code answers the same calls, and every "
                "difference is shown (the cluster waits at most 1 s a call for this machine)"
            )
        self._subject = subject
        return Found(cluster, snapshot, subject, leftover, claim, shadowing)

    @property
    def _whole_service(self) -> bool:
        """Whether the Service itself is redirected (not a personal copy, not a shadow)."""
        return self.options.scope is None and self.options.shadow is None

    def _treatment(self) -> callers.Treatment:
        options = self.options
        return callers.Treatment(
            relax_failure_policy=not options.keep_failure_policy or options.shadow is not None,
            timeout_seconds=options.timeout_seconds,
            scope=options.scope.describe() if options.scope else None,
        )

    async def _serve_locally(self, found: Found) -> Local:
        if self.options.serving.record is not None or self.options.stages:
            # What policies read and a review lacks: recorded, or handed to --policy.
            self._namespace_labels = NamespaceLabels(found.cluster, self.say)
            await asyncio.to_thread(self._namespace_labels.start)
        authority = await asyncio.to_thread(LocalAuthority.load_or_create)
        if redirect.url_hosts(found.snapshot) or found.claim or found.shadowing:
            # url: entries (and personal or shadow copies) call the dialled IP: the cert
            # must name it.
            dial_ip: str | None = await self.transport.prepare()
            stack = await self._start_stack(authority, found.snapshot, dial_ip)
        else:
            # Getting the transport ready and starting the worker both take a while.
            dial_ip, stack = await asyncio.gather(
                self.transport.prepare(), self._start_stack(authority, found.snapshot, None)
            )
        assert dial_ip is not None
        redirect.check_master_address(dial_ip)
        if self._on_serving is not None:
            await self._on_serving(stack)
        address = await self.transport.carry(stack.port)
        self._local = Local(stack, address, authority.ca_cert_pem)
        fault_point("carry")  # --relay: its Pod exists, no journal names it yet
        return self._local

    async def _start_stack(
        self, authority: LocalAuthority, snapshot: Snapshot, dial_ip: str | None
    ) -> ServingStack:
        cert_file, key_file = await asyncio.to_thread(_serving_files, authority, snapshot, dial_ip)
        serving = self.options.serving
        if serving.retry_lost_calls and not _side_effect_free(snapshot):
            serving = replace(serving, retry_lost_calls=False)
        if self.options.upstream_cert_dir is not None:
            # Before the first --run: controller-runtime refuses to start without them.
            self._authority = authority
            await asyncio.to_thread(self._write_upstream_cert_dir, snapshot)
            if serving.upstream_ca is None and not serving.upstream_insecure:
                serving = replace(serving, upstream_ca=authority.ca_cert_path)
        self._stack = ServingStack.from_spec(
            serving,
            port=self.options.port,
            cert_file=cert_file,
            key_file=key_file,
            subscribers=[self.call_stats, *self.options.subscribers],
            shadow=self.options.shadow,
            stages=[
                *([self._namespace_labels] if self._namespace_labels is not None else []),
                *self.options.stages,
            ],
        )
        await self._stack.start()
        return self._stack

    def _write_upstream_cert_dir(self, snapshot: Snapshot) -> None:
        directory = self.options.upstream_cert_dir
        if directory is None or self._authority is None:
            return
        target = redirect.service_target(snapshot)
        names = ["localhost"]
        if target is not None:
            names += certs.service_dns_names(target.name, target.namespace)
        if write_cert_dir(self._authority, directory, dns_names=names):
            self.say(f"wrote {directory}/tls.crt and tls.key (webhook-dev's CA) for the upstream")

    async def _clear_leftover(self, found: Found) -> Snapshot:
        """With ``--force`` over a stale session: restore what it left, then read again."""
        if found.leftover is None:
            return found.snapshot
        self.say(f"restoring what the unfinished session of {found.leftover.holder} left")
        await asyncio.to_thread(restore_from_journal, found.cluster, found.leftover, self.say)
        # What we read before was the stale session's redirect, not the original.
        options = self.options
        return await asyncio.to_thread(
            discover, found.cluster, options.selection, whole_service=self._whole_service
        )

    def _plan(self, found: Found, snapshot: Snapshot, local: Local) -> RedirectPlan:
        """The redirect to ``local``'s address, and the transport's objects to adopt."""
        options = self.options
        target = redirect.Target(
            master_address=local.address.ip,
            tunnel_port=local.address.port,
            ca_pem=local.ca_pem,
            session_id=self.session_id,
            relax_failure_policy=not options.keep_failure_policy,
            timeout_seconds=options.timeout_seconds,
        )
        claim = found.claim
        if found.shadowing is not None:
            target = replace(target, relax_failure_policy=True)
            plan, self._shadowed = shadow_plan.build_shadow_plan(snapshot, target, found.shadowing)
        elif claim is not None:
            plan = personal_plan.build_personal_plan(snapshot, target, claim.personal)
        else:
            plan = redirect.build_plan(snapshot, target)
        plan.creates[:0] = _transport_objects(self.transport)
        return plan

    async def _serve_shadow(self, cluster: Cluster, snapshot: Snapshot) -> None:
        """Before any copy exists: the stack knows each copy's production entry, and how to
        reach it from here (a Service's Pod through the apiserver's port-forward); the CRD
        conversions that call the Service are swept once ready (``conversion_shadow``)."""
        stack = self._stack
        if self.options.shadow is None or stack is None or stack.shadow is None:
            return
        self._reach = ProductionReach(cluster, self.say)
        if snapshot.kept_conversions:
            self._sweep = ConversionSweep(cluster, stack.shadow, self.say)
            await self._sweep.prepare(snapshot.kept_conversions, self._reach)
            stack.hooks.subscribe(self._sweep)
        for entry in self._shadowed:
            target = await self._reach.target(entry.key, str(entry.ref), entry.production)
            stack.shadow.add_target(target)
        for note in side_effect_notes(self._shadowed, self.options.shadow):
            self.say(f"note: {note}")
        for described in self._reach.describe():
            self.say(f"production reached through the apiserver's port-forward to {described}")

    async def _serve_conversion_fallback(self, cluster: Cluster, snapshot: Snapshot) -> None:
        """Before the redirect: a conversion the local code cannot answer goes to the
        Service's in-cluster Pod, where one was Ready (``conversion_fallback``)."""
        if not self._whole_service or not snapshot.crds or self._stack is None:
            return
        self._fallback = await open_fallback(cluster, snapshot, self.say)
        if self._fallback is not None:
            self._stack.fall_back_to(self._fallback.fallback)

    async def _take_lock(
        self, found: Found, snapshot: Snapshot, plan: RedirectPlan
    ) -> journal.Journal:
        """The journal of ``plan``, and the Lease that makes it ours.

        The lock comes before anything that ``finally`` would undo: if another session
        took it since the preflight, its journal and Lease are not ours to remove.
        """
        options = self.options
        claim = found.claim
        record = journal.Journal(
            subject=found.subject,
            session_id=self.session_id,
            holder=self.holder,
            context=found.cluster.context_name,
            server=found.cluster.server,
            plan=plan,
            tunnel=self.transport.describe(),
            recording=str(options.serving.record) if options.serving.record else None,
            scope=claim.personal.scope.to_json() if claim is not None else None,
            owner=claim.owner if claim else (found.shadowing.user if found.shadowing else None),
        )
        await asyncio.to_thread(
            journal.acquire_lease,
            found.cluster,
            found.subject,
            self.holder,
            self.session_id,
            force=options.force or found.leftover is not None,
            # A shadow blocks nobody (see redirect/shadow.py): its lock names no entries.
            entries=[] if found.shadowing else [str(ref) for ref in snapshot.entries],
            scope=record.scope,
        )
        if claim is not None:
            await asyncio.to_thread(recheck_after_lock, found.cluster, claim, snapshot.entries)
        fault_point("lease")
        return record

    async def _redirect(self, cluster: Cluster, record: journal.Journal) -> None:
        started = time.monotonic()
        await asyncio.to_thread(_journal_then_apply, cluster, record)
        self.say(
            f"redirected in {(time.monotonic() - started) * 1000:.0f} ms; "
            f"journal: {journal.local_path(cluster.server, record.subject)}"
        )

    async def _prove(self, cluster: Cluster, snapshot: Snapshot, plan: RedirectPlan) -> None:
        """:raises UnreachableError: with ``require_proof``, no dry run arrived (the
        ``finally`` of :meth:`run` restores the cluster on the way out)."""
        required = self.options.require_proof
        proof = PathProof(
            cluster,
            self.say,
            warn_unreached=not required,
            reconnect=functools.partial(_reconnect, cluster, plan),
        )
        assert self._local is not None
        self._local.stack.hooks.subscribe(proof)
        round_trip = await proof.prove(snapshot, self._stop)
        if round_trip is None:
            if required and proof.unreached:
                raise UnreachableError(
                    f"no dry-run call reached {self._local.address} within "
                    f"{TIMEOUT_SECONDS:.0f} s: the cluster cannot connect to this machine; "
                    "the cluster was restored"
                )
            return
        target = redirect.service_target(snapshot)
        via = f"{target.name}.{target.namespace}.svc" if target else "url"
        kind = self.transport.describe().get("kind", "tunnel")
        path = "tunnel" if kind == "ssh" else kind
        by = proof.proved_by
        proved = f" (by {by.what})" if by is not None and by.key[0] == "conversion" else ""
        self.say(
            f"ready: kube-apiserver → {via} → {path} → your code in "
            f"{round_trip * 1000:.0f} ms{proved}"
        )

    async def _heartbeat_until_stopped(self, cluster: Cluster, record: journal.Journal) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), journal.lease_seconds() / 3)
                return
            try:
                alive = await asyncio.to_thread(
                    journal.renew_lease, cluster, record.subject, self.session_id, self._health()
                )
                if not alive:
                    self._lost_lease = True
                    self.say("the redirect was taken down from elsewhere; stopping")
                    return
                await asyncio.to_thread(self._keep_ca_bundles, cluster, record)
                if self._snapshot is not None:  # renews the cert dir as expiry nears
                    await asyncio.to_thread(self._write_upstream_cert_dir, self._snapshot)
            except ClusterError as error:
                self.say(f"warning: heartbeat failed: {error.message}")

    def _health(self) -> dict[str, str]:
        last = self.call_stats.last_call
        return {
            "tunnel": str(self.transport.state),
            "calls": str(self.call_stats.calls),
            "last-call": last.isoformat(timespec="seconds") if last else "",
            **self.transport.health(),
        }

    def _keep_ca_bundles(self, cluster: Cluster, record: journal.Journal) -> None:
        """Re-append our CA where a CA injector rewrote ``caBundle`` during the session
        (cert-manager's cainjector injects webhook configurations and CRDs alike)."""
        for ref in reappend_ca(cluster, record.plan):
            self.say(f"caBundle of {ref} was rewritten during the session; appended our CA again")


def _reconnect(cluster: Cluster, plan: RedirectPlan) -> None:
    """Give each redirected entry a new ``caBundle`` value (one more copy of our CA), so
    the apiserver drops its client with a connection still on an in-cluster Pod."""
    bundles = [c for c in plan.changes if c.kind is ChangeKind.BUNDLE_APPEND]
    for ref in dict.fromkeys(c.ref for c in bundles):
        changes = [c for c in bundles if c.ref == ref]
        cluster.update(ref.url, functools.partial(reconnect_changes, changes=changes))


def _probed(
    snapshot: Snapshot, plan: RedirectPlan, claim: Claim | None, shadowing: Shadowing | None
) -> Snapshot:
    """What the probe dry-runs against: the redirected entries, or the copies."""
    if shadowing is not None:
        return shadow_plan.copy_snapshot(snapshot, plan)
    return personal_plan.copy_snapshot(plan) if claim is not None else snapshot


def _transport_objects(transport: Transport) -> list[ObjectCreate]:
    """What the transport created before the journal (``--relay``'s ConfigMap and Pod),
    journaled as adopted creates so ``down`` removes them with the rest."""
    if not isinstance(transport, CreatesObjects):
        return []
    return _adopted(transport.created_objects())


def _adopted(objects: list[CreatedObject]) -> list[ObjectCreate]:
    return [
        ObjectCreate(ObjectRef(item.kind, item.api_path, item.name), item.manifest, adopt=True)
        for item in objects
    ]


def _side_effect_free(snapshot: Snapshot) -> bool:
    """Whether every redirected entry declares ``sideEffects: None``: only then may a
    call that a lost worker may have begun be sent again (``NoneOnDryRun`` has side
    effects on every call that is not a dry run)."""
    return all(
        redirect.entry_of(snapshot, ref).get("sideEffects") == "None" for ref in snapshot.entries
    )


def _created(objects: list[CreatedObject]) -> list[interception.Created]:
    """The transport's planned objects as the webhook matching sees them."""
    return [
        interception.Created(
            resource=item.api_path.rsplit("/", 1)[-1],
            namespace=str(item.manifest["metadata"].get("namespace", "")),
            labels=dict(item.manifest["metadata"].get("labels") or {}),
        )
        for item in objects
    ]


def _journal_then_apply(
    cluster: Cluster, record: journal.Journal, part: RedirectPlan | None = None
) -> None:
    """Protocol 1: the journal (local first, then the cluster) before any change.

    ``part``: apply only these of the journal's changes (the shield, while the journal
    already names the relay that comes next).
    """
    journal.write_local(record)
    fault_point("journal-local")
    journal.write_cluster(cluster, record)
    fault_point("journal")
    apply_plan(cluster, record.plan if part is None else part, fault_point)


def _serving_files(
    authority: LocalAuthority, snapshot: Snapshot, dial_ip: str | None
) -> tuple[Path, Path]:
    """A certificate for every name the apiserver may dial: the Service's four DNS names,
    ``url:`` hosts, loopback and the dialled IP."""
    target = redirect.service_target(snapshot)
    hosts = redirect.url_hosts(snapshot)
    dns_names = certs.service_dns_names(target.name, target.namespace) if target else []
    dns_names += [host for host in hosts if not is_ip_address(host)]
    ips = ["127.0.0.1", *([dial_ip] if dial_ip else [])]
    ips += [host for host in hosts if is_ip_address(host)]
    name = f"{target.namespace}-{target.name}" if target else _first_caller(snapshot)
    return authority.serving_files(name, dns_names=dns_names or ["localhost"], ip_addresses=ips)


def _first_caller(snapshot: Snapshot) -> str:
    return snapshot.entries[0].config_name if snapshot.entries else next(iter(snapshot.crds))


def fault_point(step: str) -> None:
    """Test hook: ``WEBHOOK_DEV_FAULT_AFTER=<step>`` SIGKILLs this process right after it."""
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
