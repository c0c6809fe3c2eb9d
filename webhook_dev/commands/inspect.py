"""The inspector's command-line parts: the flags ``serve`` and ``up`` share, and ``inspect``.

``webhook-dev inspect FILE...`` opens recordings in the same page, offline; with
``--app`` it also runs the app (reloaded on save) so the replay button works.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import webbrowser
from pathlib import Path

import click

from webhook_dev.admission.exchange import Hooks
from webhook_dev.commands import event_loop
from webhook_dev.commands.options import inspector_line
from webhook_dev.errors import ExitCode, RecordingError
from webhook_dev.inspector.feed import CAPACITY, ExchangeFeed
from webhook_dev.inspector.server import DEFAULT_PORT, InspectorServer
from webhook_dev.recording.reader import read_recording
from webhook_dev.recording.redaction_key import redaction_key
from webhook_dev.serving.reloader import Reloader
from webhook_dev.serving.upstreams.app import AppUpstream


@click.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--port",
    type=int,
    default=None,
    help=f"Port on 127.0.0.1; 0: any free [default: {DEFAULT_PORT}, or any free one if taken].",
)
@click.option("--app", help="Also run this aiohttp APP (module[:attr]) so Replay works.")
@click.option("--no-reload", is_flag=True, help="With --app: do not reload it on save.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a web browser.")
@click.option(
    "--show-secrets",
    is_flag=True,
    help="Show Secret values a recording holds in clear (made with --show-secrets).",
)
def inspect(
    files: tuple[Path, ...],
    port: int | None,
    app: str | None,
    no_reload: bool,
    open_browser: bool,
    show_secrets: bool,
) -> None:
    """Open the exchanges recorded in FILE... in the inspector page, offline.

    The page is the one `serve` and `up` show, without live updates. With --app, Replay
    sends a recorded request to your current code and shows whether the answer changed.
    """
    exchanges = []
    for path in files:
        loaded, warnings = read_recording(path)
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        if warnings and not loaded:
            raise RecordingError(
                f"{path} is not a webhook-dev recording: no line could be read",
                hint="see the warnings above",
            )
        exchanges.extend(loaded)
    feed = ExchangeFeed(capacity=max(CAPACITY, len(exchanges)), redact=not show_secrets)
    feed.status = {"generation": None, "state": "offline", "message": ""}
    for exchange in sorted(exchanges, key=lambda exchange: exchange.started):
        feed.add(exchange)
    workers = AppUpstream(app, hooks=Hooks([feed])) if app is not None else None
    server = InspectorServer(
        feed,
        port=port,
        replay_target=(lambda: workers) if workers is not None else None,
        redaction_key=feed.redaction_key or redaction_key(),
        source=", ".join(path.name for path in files),
    )
    event_loop.run(_inspect_until_signal(server, workers, not no_reload, open_browser))
    sys.exit(ExitCode.OK)


async def _inspect_until_signal(
    server: InspectorServer, workers: AppUpstream | None, reload: bool, open_browser: bool
) -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    reloader = None
    if workers is not None:
        await workers.start(require_ready=True)
        if reload:
            reloader = Reloader(workers, [workers.cwd])
            await reloader.start()
    try:
        async with server:
            click.echo(f"{len(server.feed)} exchanges")
            click.echo(inspector_line(server))
            if open_browser:
                webbrowser.open(server.url)
            await stopped.wait()
    finally:
        if reloader is not None:
            await reloader.close()
        if workers is not None:
            await workers.close()
