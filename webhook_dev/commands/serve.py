"""``webhook-dev serve``: the user's webhook on https://127.0.0.1, recorded and hot-reloaded."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

import click

from webhook_dev.commands import event_loop
from webhook_dev.commands.options import (
    inspector_line,
    serving_options,
)
from webhook_dev.commands.policy_option import live_policy, policy_option
from webhook_dev.errors import ExitCode
from webhook_dev.inspector import ExchangeFeed, InspectorServer
from webhook_dev.policy.live import LivePolicy
from webhook_dev.serving.spec import ServingSpec
from webhook_dev.serving.stack import ServingStack
from webhook_dev.subscribers.console import ConsolePrinter


@click.command()
@click.argument("app", required=False)
@serving_options
@click.option("--port", default=8443, show_default=True, help="Port on 127.0.0.1; 0: any free.")
@click.option(
    "--cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Serving certificate (PEM) [default: from webhook-dev's local CA].",
)
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Its private key (PEM).",
)
@policy_option
def serve(
    serving: ServingSpec,
    port: int,
    cert: Path | None,
    key: Path | None,
    policies: tuple[Path, ...],
) -> None:
    """Serve the aiohttp webhook APP (module or module:attr) over HTTPS on 127.0.0.1.

    APP is imported from the current directory, like uvicorn and gunicorn do; attr is an
    aiohttp.web.Application or a zero-argument factory (default: create_app, then app).
    Each call prints one line; answers the apiserver would reject are flagged. Saving a
    Python file reloads the app without failing a call. Stop with Ctrl-C.

    Any language: --upstream URL forwards to your own webhook server instead, and
    --run CMD starts and restarts it on save, holding calls while it restarts.

    With --policy, admission policies decide each call too (the webhook's answer still
    goes back): a line under the call shows where they differ, and the recording and the
    inspector keep their outcome. serve has no cluster, so a policy that reads the
    request's Namespace (namespaceSelector, namespaceObject) is not compared.
    """
    spec = serving
    policy = live_policy(policies)
    feed = ExchangeFeed(redact=spec.redact) if spec.inspector else None
    subscribers: list[Any] = [
        ConsolePrinter(redact=spec.redact),
        *([feed] if feed is not None else []),
    ]
    stack = ServingStack.from_spec(
        spec,
        port=port,
        cert_file=cert,
        key_file=key,
        subscribers=subscribers,
        stages=[policy] if policy is not None else [],
    )
    inspector = None
    if feed is not None:
        inspector = InspectorServer(
            feed,
            port=spec.inspector_port,
            replay_target=lambda: stack.upstream,
            redaction_key=feed.redaction_key,
            source=f"serve {spec.source}",
        )
    interrupted = event_loop.run(_serve_until_signal(stack, spec.record, inspector, policy))
    sys.exit(ExitCode.INTERRUPTED if interrupted else ExitCode.OK)


async def _serve_until_signal(
    stack: ServingStack,
    recording: Path | None,
    inspector: InspectorServer | None = None,
    policy: LivePolicy | None = None,
) -> bool:
    """Serve until SIGINT (returns True) or SIGTERM (False); always shuts down cleanly."""
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[signal.Signals] = loop.create_future()

    def stop(signum: signal.Signals) -> None:
        if not stopped.done():
            stopped.set_result(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    async with contextlib.AsyncExitStack() as running:
        if policy is not None:
            await policy.start()  # a refused policy stops here, before anything serves
            running.push_async_callback(policy.close)
            click.echo(f"policies: {', '.join(policy.policies) or '(none)'}")
        if inspector is not None:
            await running.enter_async_context(inspector)  # a taken port fails before the app starts
        await running.enter_async_context(stack)
        if recording is not None:
            click.echo(f"recording to {recording}")
        if inspector is not None:
            click.echo(inspector_line(inspector))
        received = await stopped
    return received == signal.SIGINT
