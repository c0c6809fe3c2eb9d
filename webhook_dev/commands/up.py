"""``webhook-dev up`` and ``webhook-dev doctor``: redirect a cluster's webhook to here, or check."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

import click

from webhook_dev.commands import event_loop
from webhook_dev.commands import relay as relay_command
from webhook_dev.commands.direct import direct_spec, unreachable_hint
from webhook_dev.commands.options import (
    cluster_options,
    err_console,
    inspector_line,
    say,
    serving_options,
    shadow_options,
    target_options,
)
from webhook_dev.commands.policy_option import live_policy, policy_option
from webhook_dev.errors import ExitCode, UnreachableError, UsageError
from webhook_dev.inspector import ExchangeFeed, InspectorServer
from webhook_dev.policy.live import LivePolicy
from webhook_dev.redirect.scope import Scope
from webhook_dev.redirect.selection import Selection
from webhook_dev.redirect.session import Session, UpOptions
from webhook_dev.reviews.shadow import ShadowSpec
from webhook_dev.serving.spec import ServingSpec
from webhook_dev.serving.stack import ServingStack
from webhook_dev.subscribers.console import ConsolePrinter
from webhook_dev.subscribers.live_view import LiveView
from webhook_dev.tunnel.direct import DirectTransport
from webhook_dev.tunnel.relay import RelayTransport
from webhook_dev.tunnel.ssh import SshSpec, SshTunnel
from webhook_dev.tunnel.transport import Transport


@click.command()
@target_options
@click.option(
    "--ssh",
    "ssh",
    metavar="DEST",
    help="Tunnel through the master, as you would pass it to ssh ([user@]host or a config alias).",
)
@click.option(
    "--direct",
    is_flag=True,
    help="No tunnel: the cluster connects to this machine (kind, k3d, minikube, a VPN); "
    "only its control-plane addresses may.",
)
@click.option(
    "--relay",
    is_flag=True,
    help="Managed clusters (EKS, GKE, AKS): a relay Pod in the webhook's namespace, reached "
    "through the apiserver's port-forward; TLS stays end to end.",
)
@click.option(
    "--relay-image",
    metavar="IMAGE",
    help="With --relay: any image with python3 (default: docker.io/library/python:3.12-slim).",
)
@click.option(
    "--relay-port",
    default=443,
    show_default=True,
    help="With --relay: the port the apiserver dials on the relay (GKE private clusters "
    "reach nodes only on 443 and 10250).",
)
@click.option(
    "--relay-host-network",
    is_flag=True,
    help="With --relay: run the relay on the node's network, for CNIs whose Pod IPs the "
    "control plane cannot reach (EKS with Calico).",
)
@click.option(
    "--address",
    metavar="IP",
    help="With --direct: this machine's IP as the cluster reaches it (default: the "
    "source address of the route toward the cluster).",
)
@click.option(
    "--allow-from",
    "allow_from",
    metavar="CIDR",
    multiple=True,
    help="With --direct: also accept connections from CIDR (repeatable); by default only "
    "the control-plane nodes' InternalIPs (or the apiserver's host).",
)
@click.option(
    "--upstream-cert-dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Write DIR/tls.crt and DIR/tls.key from webhook-dev's CA before --run starts, "
    "and trust them for the https upstream (controller-runtime's cert dir).",
)
@click.option("--app", help="Your aiohttp webhook, module[:attr] (or --upstream).")
@serving_options
@cluster_options
@click.option(
    "--port",
    default=0,
    show_default="any free",
    help="Local proxy port on 127.0.0.1; with --direct, the port on --address.",
)
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
@click.option("--no-probe", is_flag=True, help="Skip the dry-run that proves the path.")
@click.option(
    "--only-namespace",
    "only_namespaces",
    multiple=True,
    metavar="NS",
    help="A personal redirect: only calls for objects in this namespace come here; everyone "
    "else's keep going to the in-cluster webhook. Repeatable.",
)
@click.option(
    "--only-user",
    "only_users",
    multiple=True,
    metavar="NAME",
    help="A personal redirect: only calls for requests by this Kubernetes user come here "
    "(CEL matchConditions, Kubernetes 1.30+). Repeatable.",
)
@click.option(
    "--only-group",
    "only_groups",
    multiple=True,
    metavar="GROUP",
    help="As --only-user, for requests by members of this group. Repeatable.",
)
@shadow_options
@policy_option
def up(
    selection: Selection | None,
    ssh: str | None,
    direct: bool,
    relay: bool,
    relay_image: str | None,
    relay_port: int,
    relay_host_network: bool,
    address: str | None,
    allow_from: tuple[str, ...],
    upstream_cert_dir: Path | None,
    serving: ServingSpec,
    context: str | None,
    kubeconfig: str | None,
    port: int,
    remote_port: int,
    master_address: str | None,
    keep_failure_policy: bool,
    timeout_seconds: int,
    accept_new_host_key: bool,
    force: bool,
    no_probe: bool,
    only_namespaces: tuple[str, ...],
    only_users: tuple[str, ...],
    only_groups: tuple[str, ...],
    shadow: ShadowSpec | None,
    policies: tuple[Path, ...],
) -> None:
    """Send a cluster's webhook calls to APP on this machine, until Ctrl-C.

    Journals every change first; Ctrl-C, SIGTERM or `webhook-dev down` (from any shell)
    restores the cluster exactly.

    With --only-namespace/--only-user/--only-group it is a personal redirect on a shared
    cluster: a copy of the entries, limited to that scope, calls this machine, and the
    originals exclude exactly that scope; the Service and its Pods are not touched.

    Every caller of the redirected Service comes along: webhook entries and CRD conversion
    webhooks (our CA appended to their caBundle). --crd NAME selects a CRD's conversion by
    name, also a url: one. A conversion cannot be scoped to a person: a personal redirect
    leaves it in the cluster.

    With --shadow, production keeps deciding: a copy of each entry (failurePolicy Ignore,
    timeoutSeconds 1) is answered here at once, and your code and the production webhook
    each answer the same request off the cluster's path; every difference is shown, and
    on exit `shadow: N compared, M differed (K noisy)`. --only-* narrows what is shadowed.
    With --policy, admission policies decide each call too, beside the webhook that
    answers; where they differ shows under the call and stays in the recording.
    """
    if selection is None:
        raise UsageError(
            "say what to redirect: --webhook NAME[/ENTRY], --service NS/NAME or --crd NAME"
        )
    if [bool(ssh), direct, relay].count(True) != 1:
        raise UsageError(
            "say how the cluster reaches this machine: exactly one of --ssh DEST, --direct "
            "or --relay"
        )
    if not ssh and (remote_port or master_address or accept_new_host_key):
        raise UsageError("--remote-port, --master-address and --accept-new-host-key are for --ssh")
    if not direct and (address or allow_from):
        raise UsageError("--address and --allow-from are for --direct")
    if not relay and (relay_image or relay_port != 443 or relay_host_network):
        raise UsageError("--relay-image, --relay-port and --relay-host-network are for --relay")
    if shadow is not None and (keep_failure_policy or selection.crds):
        raise UsageError(
            "--shadow compares admission calls: its copies are always failurePolicy Ignore "
            "with a 1 s timeout (no --keep-failure-policy), and a CRD's conversion cannot "
            "have a copy (drop --crd)"
        )
    if upstream_cert_dir is not None and not (serving.upstream or "").startswith("https://"):
        raise UsageError(
            "--upstream-cert-dir is for an https:// --upstream",
            hint="e.g. --upstream https://127.0.0.1:9443 --upstream-cert-dir DIR",
        )
    options = UpOptions(
        serving=serving,
        selection=selection,
        context=context,
        kubeconfig=kubeconfig,
        port=0 if direct else port,
        keep_failure_policy=keep_failure_policy,
        timeout_seconds=timeout_seconds,
        force=force,
        probe=not no_probe,
        # --direct and --relay: only a call arriving proves the cluster can reach us.
        require_proof=direct or relay,
        upstream_cert_dir=upstream_cert_dir,
        scope=Scope(only_namespaces, only_users, only_groups) or None,
        shadow=shadow,
    )
    transport: Transport
    if ssh:
        transport = SshTunnel(
            SshSpec(
                destination=ssh,
                remote_port=remote_port,
                master_address=master_address,
                accept_new_host_key=accept_new_host_key,
            ),
            on_state=lambda state, detail: say(f"tunnel {state}: {detail}"),
        )
    elif relay:
        transport = relay_command.relay_transport(
            context,
            kubeconfig,
            selection,
            image=relay_image,
            port=relay_port,
            host_network=relay_host_network,
            on_state=lambda state, detail: say(f"relay {state}: {detail}"),
        )
    else:
        spec = direct_spec(context, kubeconfig, address, allow_from, port)
        transport = DirectTransport(
            spec, on_state=lambda state, detail: say(f"direct {state}: {detail}")
        )
    inspector = None
    if serving.inspector:
        feed = ExchangeFeed()
        options.subscribers.append(feed)
        inspector = InspectorServer(
            feed, port=serving.inspector_port, source=f"up {serving.source}"
        )
    policy = live_policy(policies)
    if policy is not None:
        options.stages.append(policy)
    try:
        report = event_loop.run(_run_session(options, transport, inspector, policy))
    except UnreachableError as error:
        if isinstance(transport, RelayTransport):
            hint = relay_command.unreachable_hint(transport)
        elif isinstance(transport, DirectTransport):
            hint = unreachable_hint(transport)
        else:
            raise
        raise UnreachableError(error.message, hint=hint) from error
    if report is not None and not report.clean:
        sys.exit(ExitCode.FAILED)


async def _run_session(
    options: UpOptions,
    transport: Transport,
    inspector: InspectorServer | None = None,
    policy: LivePolicy | None = None,
) -> Any:
    running = contextlib.AsyncExitStack()
    if policy is not None:
        await policy.start()  # a refused policy stops here, before any change
        say(f"policies: {', '.join(policy.policies) or '(none)'}")

    async def serving(stack: ServingStack) -> None:
        if options.serving.record:
            say(f"recording to {options.serving.record}")
        if inspector is not None:
            # Replays go to the session's app, the code that answers the cluster now.
            inspector.replay_target = lambda: stack.upstream
            await running.enter_async_context(inspector)
            say(inspector_line(inspector))

    session = Session(options, transport, say, on_serving=serving)
    live = None
    if err_console.is_terminal:
        live = LiveView(err_console, session.facts, redact=options.serving.redact)
        options.subscribers.append(live)
        live.start()
    else:
        options.subscribers.append(ConsolePrinter(sys.stderr, redact=options.serving.redact))
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if live is not None:
            live.stop()  # the restore's lines read better without the panel
        session.request_stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    try:
        async with running:
            return await session.run()
    except asyncio.CancelledError:
        say("stopped before any change to the cluster")
        return None
    finally:
        await session.close()  # the stack hands on what the policy still holds, then stops it
        if policy is not None:
            await policy.close()  # when the stack never started
        if live is not None:
            live.stop()
        if options.shadow is not None and session.shadow_summary():
            say(session.shadow_summary())
