"""``webhook-dev up | down | status | doctor``: the redirect of a cluster's webhook to here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from webhook_dev import journal, redirect
from webhook_dev.cluster import Cluster
from webhook_dev.console import ConsolePrinter
from webhook_dev.errors import UsageError, WebhookDevError
from webhook_dev.inspector import ExchangeFeed, InspectorServer
from webhook_dev.inspector.cli import inspector_line, inspector_options
from webhook_dev.serve_cli import default_recording
from webhook_dev.session import (
    Session,
    UpOptions,
    check_not_held,
    discover,
    preflight_warnings,
    subject_of,
    take_down,
)
from webhook_dev.tunnel import Tunnel, TunnelSpec

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _say(text: str) -> None:
    _err.print(text, markup=False)


def _cluster_options(function: Any) -> Any:
    function = click.option("--context", help="kubeconfig context (default: the current one).")(
        function
    )
    return click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False),
        help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config).",
    )(function)


def _target_options(function: Any) -> Any:
    function = click.option(
        "--webhook",
        metavar="NAME[/ENTRY]",
        help="A Mutating/ValidatingWebhookConfiguration (all its entries, or one).",
    )(function)
    return click.option(
        "--service", metavar="NS/NAME", help="Every webhook entry that calls this Service."
    )(function)


@click.command()
@_target_options
@click.option(
    "--ssh",
    "ssh",
    required=True,
    metavar="DEST",
    help="The master, as you would pass it to ssh ([user@]host or a config alias).",
)
@click.option("--app", required=True, help="Your aiohttp webhook, module[:attr].")
@_cluster_options
@click.option("--port", default=0, show_default="any free", help="Local proxy port on 127.0.0.1.")
@click.option(
    "--remote-port",
    default=0,
    show_default="chosen by sshd",
    help="Port the tunnel listens on at the master.",
)
@click.option(
    "--master-address",
    help="The master's IP as the apiserver reaches it (default: the address sshd was reached on).",
)
@click.option(
    "--keep-failure-policy",
    is_flag=True,
    help="Do not switch redirected entries to failurePolicy Ignore and a short timeout.",
)
@click.option(
    "--timeout",
    "timeout_seconds",
    default=5,
    show_default=True,
    help="timeoutSeconds for redirected entries during the session.",
)
@click.option(
    "--accept-new-host-key",
    is_flag=True,
    help="Trust the master's SSH host key if none is known yet (never a changed one).",
)
@click.option("--force", is_flag=True, help="Restore and take over what a stale session left.")
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Recording file [default: a new one in the state directory].",
)
@click.option("--no-record", is_flag=True, help="Record nothing.")
@click.option("--no-reload", is_flag=True, help="Do not reload the app on save.")
@click.option(
    "--watch",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Reload on changes under this directory. Repeatable.",
)
@click.option("--no-probe", is_flag=True, help="Skip the dry-run that proves the path.")
@inspector_options
def up(
    webhook: str | None,
    service: str | None,
    ssh: str,
    app: str,
    context: str | None,
    kubeconfig: str | None,
    port: int,
    remote_port: int,
    master_address: str | None,
    keep_failure_policy: bool,
    timeout_seconds: int,
    accept_new_host_key: bool,
    force: bool,
    record: Path | None,
    no_record: bool,
    no_reload: bool,
    watch: tuple[Path, ...],
    no_probe: bool,
    inspector_port: int | None,
    no_inspector: bool,
) -> None:
    """Send a cluster's webhook calls to APP on this machine, until Ctrl-C.

    Journals every change first; Ctrl-C, SIGTERM or `webhook-dev down` (from any shell)
    restores the cluster exactly.
    """
    if bool(webhook) == bool(service):
        raise UsageError("say what to redirect: exactly one of --webhook or --service")
    if record and no_record:
        raise UsageError("--record and --no-record exclude each other")
    options = UpOptions(
        ssh=ssh,
        app=app,
        webhook=webhook,
        service=service,
        context=context,
        kubeconfig=kubeconfig,
        port=port,
        remote_port=remote_port,
        master_address=master_address,
        keep_failure_policy=keep_failure_policy,
        timeout_seconds=timeout_seconds,
        accept_new_host_key=accept_new_host_key,
        force=force,
        record=None if no_record else (record or default_recording(app)),
        reload=not no_reload,
        watch=list(watch),
        probe=not no_probe,
        subscribers=[ConsolePrinter()],
    )
    inspector = None
    if not no_inspector:
        feed = ExchangeFeed()
        options.subscribers.append(feed)
        inspector = InspectorServer(feed, port=inspector_port, source=f"up {app}")
    if options.record:
        _say(f"recording to {options.record}")
    report = asyncio.run(_run_session(options, inspector))
    if report is not None and not report.clean:
        sys.exit(1)


async def _run_session(options: UpOptions, inspector: InspectorServer | None = None) -> Any:
    session = Session(options, _say)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, session.request_stop)
    try:
        async with contextlib.AsyncExitStack() as running:
            if inspector is not None:
                # Replays go to the session's app, the code that answers the cluster now.
                inspector.replay_target = lambda: session.stack.upstream if session.stack else None
                await running.enter_async_context(inspector)
                _say(inspector_line(inspector))
            return await session.run()
    except asyncio.CancelledError:
        _say("stopped before any change to the cluster")
        return None
    finally:
        await session.close()


@click.command()
@_target_options
@click.option("--all", "everything", is_flag=True, help="Every redirect in this cluster.")
@_cluster_options
def down(
    webhook: str | None,
    service: str | None,
    everything: bool,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Restore the cluster from the journal, from any shell or machine. Safe to repeat.

    Where someone else changed a field during the session, it is left as they set it and
    reported; the exit code is then 1.
    """
    cluster = Cluster.connect(context, kubeconfig)
    found = _journals(cluster)
    if service:
        found = [j for j in found if str(j.subject) == service]
    elif webhook:
        name = webhook.partition("/")[0]
        found = [j for j in found if any(c.ref.name == name for c in j.plan.changes)]
    elif not everything and len(found) > 1:
        listed = ", ".join(str(j.subject) for j in found)
        raise UsageError(
            f"several redirects are active ({listed})",
            hint="name one with --service NS/NAME, or pass --all",
        )
    leases_only = _orphan_leases(cluster, found) if (everything or service) else []
    if not found and not leases_only:
        _say("nothing to restore: no webhook-dev journal in this cluster or on this machine")
        return
    clean = True
    for record in found:
        report = take_down(cluster, record, _say)
        clean = clean and report.clean
    for subject in leases_only:
        journal.release_lease(cluster, subject)
        _say(f"released the lock of {subject} (its session changed nothing)")
    if not clean:
        sys.exit(1)


def _journals(cluster: Cluster) -> list[journal.Journal]:
    """Cluster journals, plus local ones for this cluster the cluster never got."""
    by_subject = {str(j.subject): j for j in journal.read_cluster_all(cluster)}
    for record in journal.read_local_all():
        if record.server == cluster.server:
            by_subject.setdefault(str(record.subject), record)
    return list(by_subject.values())


def _orphan_leases(cluster: Cluster, found: list[journal.Journal]) -> list[journal.Subject]:
    known = {str(j.subject) for j in found}
    leases = cluster.list(
        "/apis/coordination.k8s.io/v1/leases", label_selector=f"{journal.MANAGED_LABEL}=webhook-dev"
    )
    subjects = []
    for lease in leases:
        meta = lease["metadata"]
        name = meta["name"].removeprefix("webhook-dev-")
        subject = journal.Subject(meta["namespace"], name)
        if str(subject) not in known:
            subjects.append(subject)
    return subjects


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_cluster_options
def status(as_json: bool, context: str | None, kubeconfig: str | None) -> None:
    """Who holds which redirect, since when, tunnel health and calls."""
    cluster = Cluster.connect(context, kubeconfig)
    rows: list[dict[str, Any]] = []
    for record in _journals(cluster):
        lease = journal.read_lease(cluster, record.subject)
        rows.append(
            {
                "subject": str(record.subject),
                "holder": record.holder,
                "since": record.created,
                "webhooks": sorted(
                    {
                        c.ref.name
                        for c in record.plan.changes
                        if c.ref.kind in redirect.CONFIG_COLLECTIONS
                    }
                ),
                "tunnel": record.tunnel,
                "recording": record.recording,
                "lease": None
                if lease is None
                else {
                    "renewed": lease.renewed.isoformat(),
                    "stale": lease.is_stale(),
                    **lease.health,
                },
            }
        )
    if as_json:
        click.echo(json.dumps({"context": cluster.context_name, "redirects": rows}, indent=2))
        return
    if not rows:
        click.echo(f"no redirects in context {cluster.context_name}")
        return
    now = datetime.now(UTC)
    for row in rows:
        lease = row["lease"]
        state = (
            "no lease: the session died; run `webhook-dev down`"
            if lease is None
            else "STALE: the session stopped renewing; run `webhook-dev down`"
            if lease["stale"]
            else f"live, tunnel {lease.get('tunnel', '?')}, {lease.get('calls', '0')} calls"
            f", last {lease.get('last-call') or 'never'}"
        )
        since = datetime.fromisoformat(row["since"])
        click.echo(
            f"{row['subject']}  held by {row['holder']}  since {row['since']} "
            f"({int((now - since).total_seconds())}s)"
        )
        click.echo(f"  webhooks: {', '.join(row['webhooks'])}")
        tunnel = row["tunnel"]
        click.echo(
            f"  tunnel: {tunnel.get('master')}:{tunnel.get('port')} via "
            f"{tunnel.get('destination')}  ({state})"
        )
        if row["recording"]:
            click.echo(f"  recording: {row['recording']}")


@click.command()
@_target_options
@click.option("--ssh", "ssh", required=True, metavar="DEST", help="The master, as for ssh.")
@_cluster_options
@click.option("--master-address", help="The master's IP as the apiserver reaches it.")
@click.option("--accept-new-host-key", is_flag=True, help="As for up.")
def doctor(
    webhook: str | None,
    service: str | None,
    ssh: str,
    context: str | None,
    kubeconfig: str | None,
    master_address: str | None,
    accept_new_host_key: bool,
) -> None:
    """Run up's preflight checks and change nothing."""
    if bool(webhook) == bool(service):
        raise UsageError("say what to check: exactly one of --webhook or --service")
    failures = asyncio.run(
        _doctor(webhook, service, ssh, context, kubeconfig, master_address, accept_new_host_key)
    )
    if failures:
        sys.exit(1)


async def _doctor(
    webhook: str | None,
    service: str | None,
    ssh: str,
    context: str | None,
    kubeconfig: str | None,
    master_address: str | None,
    accept_new_host_key: bool,
) -> int:
    failures = 0

    def check(name: str, error: Exception | None, detail: str = "") -> None:
        nonlocal failures
        if error is None:
            _err.print(f"[green]✓[/] {name}{': ' + detail if detail else ''}", highlight=False)
        else:
            failures += 1
            _err.print(f"[red]✗[/] {name}", highlight=False)
            _say(f"    {error}")

    try:
        cluster = await asyncio.to_thread(Cluster.connect, context, kubeconfig)
        snapshot = await asyncio.to_thread(discover, cluster, webhook, service)
        check(
            "cluster reachable, webhook entries found",
            None,
            f"{', '.join(map(str, snapshot.entries))} ({cluster.context_name})",
        )
    except WebhookDevError as error:
        check("cluster reachable, webhook entries found", error)
        return failures
    try:
        redirect.validate_snapshot(snapshot)
        check("Service usable as a redirect target", None)
    except WebhookDevError as error:
        check("Service usable as a redirect target", error)
    for warning in preflight_warnings(snapshot):
        _say(f"! {warning}")
    try:
        await asyncio.to_thread(check_not_held, cluster, subject_of(snapshot), False)
        check("no other session holds it", None)
    except WebhookDevError as error:
        check("no other session holds it", error)
    tunnel = Tunnel(
        TunnelSpec(
            destination=ssh, master_address=master_address, accept_new_host_key=accept_new_host_key
        )
    )
    try:
        master = await tunnel.connect()
        check("sshd reachable, host key known, key accepted", None, ssh)
        redirect.check_master_address(master)
        check("master address usable as an Endpoint", None, master)
        listener = await _loopback_sink()
        await tunnel.open_forward(listener.sockets[0].getsockname()[1])
        check(
            "GatewayPorts lets the forward bind the master's address",
            None,
            f"{master}:{tunnel.remote_port}",
        )
        listener.close()
    except WebhookDevError as error:
        check("SSH tunnel", error)
    finally:
        await tunnel.close()
    return failures


async def _loopback_sink() -> asyncio.Server:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    return await asyncio.start_server(close, "127.0.0.1", 0)
