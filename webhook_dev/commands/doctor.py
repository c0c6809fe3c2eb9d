"""``webhook-dev doctor``: run ``up``'s checks on the cluster and the master; change nothing."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass

import click

from webhook_dev.commands import relay as relay_command
from webhook_dev.commands.options import cluster_options, err_console, say, target_options
from webhook_dev.errors import ExitCode, PreflightError, UsageError, WebhookDevError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect import callers
from webhook_dev.redirect import plan_builder as redirect
from webhook_dev.redirect.discovery import check_not_held, discover, preflight_warnings, subject_of
from webhook_dev.redirect.personal import prepare_claim
from webhook_dev.redirect.scope import Scope
from webhook_dev.redirect.selection import Selection
from webhook_dev.tunnel import direct_addresses, relay_manifests
from webhook_dev.tunnel.direct import bind_listener
from webhook_dev.tunnel.ssh import SshSpec, SshTunnel


@click.command()
@target_options
@click.option("--ssh", "ssh", metavar="DEST", help="The master, as for ssh.")
@click.option("--direct", is_flag=True, help="Check what up --direct needs instead.")
@click.option(
    "--relay",
    is_flag=True,
    help="Check what up --relay needs instead: every RBAC verb (SelfSubjectAccessReview), "
    "and which other admission control would change or block the relay.",
)
@click.option("--address", metavar="IP", help="As for up --direct.")
@click.option("--allow-from", "allow_from", metavar="CIDR", multiple=True, help="As for up.")
@click.option("--port", default=0, help="As for up --direct: the port on the address.")
@cluster_options
@click.option("--master-address", help="The master's IP as the apiserver reaches it.")
@click.option("--accept-new-host-key", is_flag=True, help="As for up.")
@click.option("--only-namespace", "only_namespaces", multiple=True, metavar="NS", help="As for up.")
@click.option("--only-user", "only_users", multiple=True, metavar="NAME", help="As for up.")
@click.option("--only-group", "only_groups", multiple=True, metavar="GROUP", help="As for up.")
def doctor(
    selection: Selection | None,
    ssh: str | None,
    direct: bool,
    relay: bool,
    address: str | None,
    allow_from: tuple[str, ...],
    port: int,
    context: str | None,
    kubeconfig: str | None,
    master_address: str | None,
    accept_new_host_key: bool,
    only_namespaces: tuple[str, ...],
    only_users: tuple[str, ...],
    only_groups: tuple[str, ...],
) -> None:
    """Run up's preflight checks and change nothing."""
    if selection is None:
        raise UsageError(
            "say what to check: --webhook NAME[/ENTRY], --service NS/NAME or --crd NAME"
        )
    if [bool(ssh), direct, relay].count(True) != 1:
        raise UsageError(
            "say which transport to check: exactly one of --ssh DEST, --direct or --relay"
        )
    scope = Scope(only_namespaces, only_users, only_groups) or None
    failures = asyncio.run(
        _doctor(
            selection,
            ssh,
            context,
            kubeconfig,
            master_address,
            accept_new_host_key,
            scope,
            DirectFlags(address, allow_from, port) if direct else None,
            relay=relay,
        )
    )
    if failures:
        sys.exit(ExitCode.FAILED)


@dataclass(frozen=True)
class DirectFlags:
    address: str | None
    allow_from: tuple[str, ...]
    port: int


async def _doctor(
    selection: Selection,
    ssh: str | None,
    context: str | None,
    kubeconfig: str | None,
    master_address: str | None,
    accept_new_host_key: bool,
    scope: Scope | None = None,
    direct: DirectFlags | None = None,
    relay: bool = False,
) -> int:
    failures = 0

    def check(name: str, error: Exception | None, detail: str = "") -> None:
        nonlocal failures
        if error is None:
            err_console.print(
                f"[green]✓[/] {name}{': ' + detail if detail else ''}", highlight=False
            )
        else:
            failures += 1
            err_console.print(f"[red]✗[/] {name}", highlight=False)
            say(f"    {error}")

    try:
        cluster = await asyncio.to_thread(Cluster.connect, context, kubeconfig)
        snapshot = await asyncio.to_thread(
            discover, cluster, selection, whole_service=scope is None
        )
        found = [*map(str, snapshot.entries), *(f"conversion of {n}" for n in snapshot.crds)]
        check(
            "cluster reachable, callers found",
            None,
            f"{', '.join(found) or 'none'} ({cluster.context_name})",
        )
    except WebhookDevError as error:
        check("cluster reachable, callers found", error)
        return failures
    say(f"  {callers.heading(snapshot)}")
    treatment = callers.Treatment(scope=scope.describe() if scope else None)
    for line in callers.caller_lines(snapshot, treatment):
        say(f"    {line}")
    if relay:
        await asyncio.to_thread(_check_relay_permissions, cluster, snapshot, check)
    try:
        redirect.validate_snapshot(snapshot)
        check("Service usable as a redirect target", None)
    except WebhookDevError as error:
        check("Service usable as a redirect target", error)
    for warning in preflight_warnings(snapshot):
        say(f"! {warning}")
    try:
        subject = subject_of(snapshot)
        if scope is not None:
            claim = await asyncio.to_thread(prepare_claim, cluster, snapshot, subject, scope, False)
            for warning in claim.warnings:
                say(f"! {warning}")
            subject = claim.subject
        await asyncio.to_thread(check_not_held, cluster, subject, False)
        check("no other session holds it" + (f" ({scope.describe()})" if scope else ""), None)
    except WebhookDevError as error:
        check("no other session holds it", error)
    if direct is not None:
        _check_direct(cluster, direct, check)
        return failures
    if relay:
        say(
            "  whether the apiserver can reach the relay Pod is proved by up --relay's "
            "dry-run probe"
        )
        return failures
    assert ssh is not None
    tunnel = SshTunnel(
        SshSpec(
            destination=ssh, master_address=master_address, accept_new_host_key=accept_new_host_key
        )
    )
    try:
        master = await tunnel.prepare()
        check("sshd reachable, host key known, key accepted", None, ssh)
        redirect.check_master_address(master)
        check("master address usable as an Endpoint", None, master)
        listener = await _loopback_sink()
        address = await tunnel.carry(listener.sockets[0].getsockname()[1])
        check("GatewayPorts lets the forward bind the master's address", None, str(address))
        listener.close()
    except WebhookDevError as error:
        check("SSH tunnel", error)
    finally:
        await tunnel.close()
    return failures


def _check_relay_permissions(
    cluster: Cluster,
    snapshot: redirect.Snapshot,
    check: Callable[[str, Exception | None, str], None],
) -> None:
    """Every verb ``up --relay`` uses, asked with SelfSubjectAccessReview (no change)."""
    target = redirect.service_target(snapshot)
    namespace = target.namespace if target else "default"
    name = f"RBAC: every verb up --relay needs (in {namespace})"
    try:
        missing = relay_command.missing_permissions(cluster, namespace)
    except WebhookDevError as error:
        check(name, error, "")
        return
    if missing:
        check(name, relay_command.describe_missing(missing, namespace), "")
    else:
        check(name, None, f"{len(relay_manifests.RELAY_PERMISSIONS)} verbs allowed")
    name = f"no other admission control would change or block the relay (in {namespace})"
    try:
        in_the_way = relay_command.admission_in_the_way(cluster, snapshot, namespace)
    except WebhookDevError as error:
        check(name, error, "")
        return
    if in_the_way:
        check(
            name,
            PreflightError(
                "; ".join(in_the_way),
                hint="up --relay shields the relay only from the entries it redirects; "
                "exclude the label webhook-dev/relay in these (objectSelector) or redirect "
                "them too (docs/relay.md)",
            ),
            "",
        )
    else:
        check(name, None, "the redirected entries are shielded during the session")


def _check_direct(
    cluster: Cluster, flags: DirectFlags, check: Callable[[str, Exception | None, str], None]
) -> None:
    """What ``up --direct`` needs that can be known before any change (``check`` counts)."""
    learned = direct_addresses.learn(cluster)
    peers, because = learned.allowed_peers()
    shown = ", ".join(peers) or "none"
    if peers or flags.allow_from:
        check("the cluster shows where its apiserver calls from", None, f"{shown} ({because})")
    else:
        check(
            "the cluster shows where its apiserver calls from",
            PreflightError(
                "no control-plane Node and no apiserver address visible",
                hint="pass --allow-from with the apiserver's address",
            ),
            "",
        )
        return
    try:
        spec = direct_addresses.plan_direct(
            learned, address=flags.address, allow_from=flags.allow_from, port=flags.port
        )
        listener = bind_listener(spec.address, spec.port)
        port = listener.getsockname()[1]
        listener.close()
    except WebhookDevError as error:
        check("an address of this machine, not loopback, port free", error, "")
        return
    check(
        "an address of this machine, not loopback, port free",
        None,
        f"{spec.address}:{port if flags.port else 'any'} (from {spec.address_because})",
    )
    say(
        f"  up --direct will accept connections only from {spec.allowed}; whether the "
        "cluster can connect is proved by up's dry-run probe"
    )


async def _loopback_sink() -> asyncio.Server:
    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    return await asyncio.start_server(close, "127.0.0.1", 0)
