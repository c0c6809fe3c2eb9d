"""``webhook-dev up``: one session from preflight to restore.

The order is what makes it safe:

1. read the cluster and check it (Service shape, port, holder lock, leftovers) — no change;
2. connect SSH and learn the master's address — no change;
3. serve the app locally behind TLS, open the reverse forward and probe that sshd bound the
   master's address (``GatewayPorts``) — still no change in the cluster;
4. take the Lease, write the journal (locally, then in the cluster);
5. apply the plan, object by object (see :mod:`webhook_dev.redirect.apply` for the order);
6. prove the path with a dry-run create, print ``ready``;
7. serve, heartbeat the Lease (publishing tunnel health), re-append our CA if a CA injector
   rewrites ``caBundle``;
8. on Ctrl-C, SIGTERM, or any failure after step 4: restore from the journal.

A ``kill -9`` anywhere leaves the journal, from which ``webhook-dev down`` restores — tests
kill ``up`` after every step through ``WEBHOOK_DEV_FAULT_AFTER=<step>``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webhook_dev.admission.exchange import Exchange
from webhook_dev.errors import ClusterError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect import journal
from webhook_dev.redirect import plan_builder as redirect
from webhook_dev.redirect import probe_objects as probe
from webhook_dev.redirect.apply import RestoreReport, applier, apply_plan
from webhook_dev.redirect.discovery import check_not_held, discover, preflight_warnings, subject_of
from webhook_dev.redirect.plan import ChangeKind, RedirectPlan, get_field
from webhook_dev.redirect.plan_builder import Snapshot
from webhook_dev.redirect.restore import take_down
from webhook_dev.serving.spec import ServingSpec
from webhook_dev.serving.stack import ServingStack
from webhook_dev.subscribers.live_view import SessionFacts
from webhook_dev.tls import certs
from webhook_dev.tls.authority import LocalAuthority
from webhook_dev.tunnel.ssh import Tunnel, TunnelSpec, TunnelState

FAULT_ENV = "WEBHOOK_DEV_FAULT_AFTER"
PROBE_TIMEOUT_SECONDS = 30.0
# The apiserver answers a dry run only after our webhook answered it, so when the dry run
# returns, the call has reached the proxy or never will; this covers the hook's scheduling.
PROBE_ARRIVAL_GRACE_SECONDS = 0.25
PROBE_PAUSE_SECONDS = 0.1

Say = Callable[[str], None]


@dataclass
class UpOptions:
    """Everything ``up`` needs; the CLI fills it from flags, config and environment."""

    ssh: str
    serving: ServingSpec  # what answers, recording, reload, inspector: as for ``serve``
    webhook: str | None = None  # NAME or NAME/ENTRY
    service: str | None = None  # NAMESPACE/NAME
    context: str | None = None
    kubeconfig: str | None = None
    port: int = 0
    remote_port: int = 0
    master_address: str | None = None
    keep_failure_policy: bool = False
    timeout_seconds: int = 5
    accept_new_host_key: bool = False
    force: bool = False
    probe: bool = True
    subscribers: list[Any] = field(default_factory=list)


# --- the session ----------------------------------------------------------------------------


class Session:
    """A running ``up``: owns the stack, the tunnel, the journal and the heartbeat."""

    def __init__(
        self,
        options: UpOptions,
        say: Say,
        on_serving: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``on_serving`` runs once the local stack serves (e.g. to start the inspector),
        so nothing extra starts for an ``up`` that fails its preflight."""
        self.options = options
        self.say = say
        self._on_serving = on_serving
        self.session_id = uuid.uuid4().hex
        self.holder = journal.holder_identity()
        self.cluster: Cluster | None = None
        self.tunnel: Tunnel | None = None
        self.stack: ServingStack | None = None
        self.journal: journal.Journal | None = None
        self.calls = 0
        self.last_call: str = ""
        self._probe_seen: dict[str, asyncio.Future[float]] = {}
        self._lost_lease = False
        self._stop = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._changing = False  # from the journal on, stop politely instead of cancelling

    def facts(self) -> SessionFacts | None:
        """For the live view: what is redirected, and how the tunnel is doing."""
        if self.tunnel is None:
            return None
        tunnel = self.tunnel
        remote = f"{tunnel.master_address}:{tunnel.remote_port}"
        return SessionFacts(
            subject=str(self.journal.subject) if self.journal else "(preparing)",
            tunnel=str(tunnel.state),
            endpoint=f"{remote} → 127.0.0.1:{tunnel.local_port}",
            recording=str(self.options.serving.record) if self.options.serving.record else None,
            reconnects=tunnel.reconnects,
        )

    def request_stop(self) -> None:
        """Ctrl-C / SIGTERM: before any change, abort at once; after, restore and leave."""
        if self._stop.is_set():
            self.say("still restoring the cluster; please wait")
            return
        self._stop.set()
        if not self._changing and self._task is not None:
            self._task.cancel()

    # subscriber interface (ServingStack hooks)
    def on_exchange(self, exchange: Exchange) -> None:
        self.calls += 1
        self.last_call = exchange.started.isoformat(timespec="seconds")
        name = (exchange.request.get("name") or "") if exchange.request else ""
        waiter = self._probe_seen.get(name)
        if waiter is not None and not waiter.done():
            waiter.set_result(time.monotonic())

    async def run(self) -> RestoreReport | None:
        """Run until :meth:`request_stop`; returns the restore report (None: nothing changed)."""
        self._task = asyncio.current_task()
        options = self.options
        self.cluster = cluster = await asyncio.to_thread(
            Cluster.connect, options.context, options.kubeconfig
        )
        snapshot = await asyncio.to_thread(discover, cluster, options.webhook, options.service)
        redirect.validate_snapshot(snapshot)
        subject = subject_of(snapshot)
        leftover = await asyncio.to_thread(check_not_held, cluster, subject, options.force)
        for warning in preflight_warnings(snapshot):
            self.say(f"warning: {warning}")
        self.say(
            f"redirecting {', '.join(map(str, snapshot.entries))} (context {cluster.context_name})"
        )

        self.tunnel = Tunnel(
            TunnelSpec(
                destination=options.ssh,
                remote_port=options.remote_port,
                master_address=options.master_address,
                accept_new_host_key=options.accept_new_host_key,
            ),
            on_state=lambda state, detail: self.say(f"tunnel {state}: {detail}"),
        )
        authority = await asyncio.to_thread(LocalAuthority.load_or_create)
        if redirect.url_hosts(snapshot):
            # url: entries are rewritten to the master's IP: the certificate must name it.
            master = await self.tunnel.connect()
            await self._start_stack(authority, snapshot, master)
        else:
            # Connecting SSH and starting the worker both take a while: overlap them.
            master, _ = await asyncio.gather(
                self.tunnel.connect(), self._start_stack(authority, snapshot, None)
            )
        redirect.check_master_address(master)
        assert self.stack is not None
        if self._on_serving is not None:
            await self._on_serving()
        remote_port = await self.tunnel.open_forward(self.stack.port)

        if leftover is not None:
            self.say(f"restoring what the unfinished session of {leftover.holder} left")
            await asyncio.to_thread(take_down, cluster, leftover, self.say)
            # What we read before was the stale session's redirect, not the original.
            snapshot = await asyncio.to_thread(discover, cluster, options.webhook, options.service)
        plan = redirect.build_plan(
            snapshot,
            redirect.Target(
                master_address=master,
                tunnel_port=remote_port,
                ca_pem=authority.ca_cert_pem,
                session_id=self.session_id,
                relax_failure_policy=not options.keep_failure_policy,
                timeout_seconds=options.timeout_seconds,
            ),
        )
        self.journal = journal.Journal(
            subject=subject,
            session_id=self.session_id,
            holder=self.holder,
            context=cluster.context_name,
            server=cluster.server,
            plan=plan,
            tunnel={"destination": options.ssh, "master": master, "port": remote_port},
            recording=str(options.serving.record) if options.serving.record else None,
        )
        started = time.monotonic()
        # Take the lock before anything that `finally` would undo: if another session took
        # it since the preflight, its journal and Lease are not ours to remove.
        await asyncio.to_thread(
            journal.acquire_lease,
            cluster,
            subject,
            self.holder,
            self.session_id,
            force=options.force or leftover is not None,
        )
        fault_point("lease")
        self._changing = True
        try:
            await asyncio.to_thread(self._redirect, cluster, self.journal)
            self.say(
                f"redirected in {(time.monotonic() - started) * 1000:.0f} ms; "
                f"journal: {journal.local_path(cluster.server, subject)}"
            )
            if options.probe and not self._stop.is_set():
                await self._prove(snapshot)
            fault_point("ready")
            await self._heartbeat_until_stopped()
        finally:
            report = None
            if not self._lost_lease:
                self.say("restoring the cluster")
                report = await asyncio.to_thread(take_down, cluster, self.journal, self.say)
        return report

    async def close(self) -> None:
        if self.tunnel is not None:
            await self.tunnel.close()
        if self.stack is not None:
            await self.stack.close()

    async def _start_stack(
        self, authority: LocalAuthority, snapshot: Snapshot, master: str | None
    ) -> None:
        options = self.options
        cert_file, key_file = await asyncio.to_thread(
            self._serving_files, authority, snapshot, master
        )
        self.stack = ServingStack.from_spec(
            options.serving,
            port=options.port,
            cert_file=cert_file,
            key_file=key_file,
            subscribers=[self, *options.subscribers],
        )
        await self.stack.start()

    def _serving_files(
        self, authority: LocalAuthority, snapshot: Snapshot, master: str | None
    ) -> tuple[Path, Path]:
        target = redirect.service_target(snapshot)
        dns_names = certs.service_dns_names(target.name, target.namespace) if target else []
        dns_names += [host for host in redirect.url_hosts(snapshot) if not _is_ip(host)]
        ips = ["127.0.0.1", *([master] if master else [])]
        ips += [host for host in redirect.url_hosts(snapshot) if _is_ip(host)]
        name = f"{target.namespace}-{target.name}" if target else snapshot.entries[0].config_name
        return authority.serving_files(name, dns_names=dns_names or ["localhost"], ip_addresses=ips)

    def _redirect(self, cluster: Cluster, record: journal.Journal) -> None:
        """Steps 4 and 5: the journal (local first, then the cluster), then the changes."""
        journal.write_local(record)
        fault_point("journal-local")
        journal.write_cluster(cluster, record)
        fault_point("journal")
        apply_plan(cluster, record.plan, fault_point)

    async def _prove(self, snapshot: Snapshot) -> None:
        """Dry-run create an object the rules match and wait for it at the proxy."""
        assert self.cluster is not None
        cluster = self.cluster
        namespaces = await asyncio.to_thread(cluster.list, "/api/v1/namespaces")
        candidates: list[probe.ProbeObject] = []
        for ref in snapshot.entries:
            candidates = probe.probe_objects(redirect.entry_of(snapshot, ref), namespaces)
            if candidates:
                break
        if not candidates:
            self.say(
                "ready (no probe: the rules match no resource we can dry-run); "
                "waiting for the first real call"
            )
            return
        # kube-proxy and the apiserver's endpoint cache pick up the new endpoints
        # asynchronously, and failurePolicy Ignore hides a call that did not arrive: so probe
        # again until one does, rotating namespaces in case another webhook refuses there.
        # Each try is a dry run; nothing is stored.
        deadline = time.monotonic() + PROBE_TIMEOUT_SECONDS
        round_trip = None
        refusals: set[str] = set()
        attempt = 0
        while round_trip is None and time.monotonic() < deadline and not self._stop.is_set():
            candidate = candidates[attempt % len(candidates)]
            attempt += 1
            round_trip = await self._probe_once(candidate, refusals)
        if round_trip is not None:
            # The first call to arrive may have paid for new connections along the way; a
            # second one says what a call costs now.
            round_trip = await self._probe_once(candidate, refusals) or round_trip
        if round_trip is None:
            self.say(
                "warning: the probe's dry-run creates did not reach your code within "
                f"{PROBE_TIMEOUT_SECONDS:.0f} s; the apiserver cannot call through the tunnel "
                "(see `webhook-dev doctor`)"
            )
            return
        target = redirect.service_target(snapshot)
        via = f"{target.name}.{target.namespace}.svc" if target else "url"
        self.say(
            f"ready: kube-apiserver → {via} → tunnel → your code in {round_trip * 1000:.0f} ms"
        )

    async def _probe_once(self, candidate: probe.ProbeObject, refusals: set[str]) -> float | None:
        """One dry-run create; its round trip in seconds if it reached the proxy in time."""
        assert self.cluster is not None
        seen: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._probe_seen[candidate.name] = seen
        started = time.monotonic()
        try:
            await asyncio.to_thread(
                self.cluster.create, candidate.collection, candidate.manifest, dry_run=True
            )
        except ClusterError as error:
            if error.message not in refusals:
                refusals.add(error.message)
                self.say(f"probe: the apiserver refused the dry run: {error.message}")
        try:
            return (await asyncio.wait_for(seen, PROBE_ARRIVAL_GRACE_SECONDS)) - started
        except TimeoutError:
            await asyncio.sleep(PROBE_PAUSE_SECONDS)
            return None
        finally:
            self._probe_seen.pop(candidate.name, None)

    async def _heartbeat_until_stopped(self) -> None:
        assert self.cluster is not None and self.journal is not None
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), journal.lease_seconds() / 3)
                return
            try:
                alive = await asyncio.to_thread(
                    journal.renew_lease,
                    self.cluster,
                    self.journal.subject,
                    self.session_id,
                    self._health(),
                )
                if not alive:
                    self._lost_lease = True
                    self.say("the redirect was taken down from elsewhere; stopping")
                    return
                await asyncio.to_thread(self._keep_ca_bundles)
            except ClusterError as error:
                self.say(f"warning: heartbeat failed: {error.message}")

    def _health(self) -> dict[str, str]:
        state = self.tunnel.state if self.tunnel else TunnelState.CLOSED
        return {"tunnel": str(state), "calls": str(self.calls), "last-call": self.last_call}

    def _keep_ca_bundles(self) -> None:
        """Re-append our CA where a CA injector rewrote ``caBundle`` during the session."""
        assert self.cluster is not None and self.journal is not None
        plan: RedirectPlan = self.journal.plan
        bundles = [c for c in plan.changes if c.kind is ChangeKind.BUNDLE_APPEND]
        for ref in {c.ref for c in bundles}:
            changes = [c for c in bundles if c.ref == ref]
            current = self.cluster.get_or_none(ref.url)
            if current is None:
                continue
            missing = [
                c
                for c in changes
                if not isinstance(value := get_field(current, c.path), str)
                or not certs.bundle_contains(_b64(value), _b64(c.after))
            ]
            if missing:
                self.cluster.update(ref.url, applier(missing))
                self.say(
                    f"caBundle of {ref} was rewritten during the session; appended our CA again"
                )


def fault_point(step: str) -> None:
    """Test hook: ``WEBHOOK_DEV_FAULT_AFTER=<step>`` SIGKILLs this process right after it."""
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _b64(value: str) -> bytes:
    with contextlib.suppress(ValueError):
        return base64.b64decode(value)
    return b""
