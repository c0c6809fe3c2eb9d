"""``webhook-dev serve``: the user's webhook on https://127.0.0.1, recorded and hot-reloaded."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from datetime import datetime
from pathlib import Path

import click

from webhook_dev.console import ConsolePrinter
from webhook_dev.inspector import ExchangeFeed, InspectorServer
from webhook_dev.inspector.cli import inspector_line, inspector_options
from webhook_dev.paths import state_dir
from webhook_dev.stack import ServingStack


def default_recording(app: str) -> Path:
    """``<state>/recordings/<time>-<module>.jsonl``: one file a session."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = app.partition(":")[0]
    return state_dir() / "recordings" / f"{stamp}-{name}.jsonl"


@click.command()
@click.argument("app")
@click.option("--port", default=8443, show_default=True, help="Port on 127.0.0.1; 0: any free.")
@click.option(
    "--record",
    "record",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append exchanges to this JSON Lines file [default: a new file in the state directory].",
)
@click.option("--no-record", is_flag=True, help="Record nothing.")
@click.option("--show-secrets", is_flag=True, help="Record Secret data in clear.")
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
@click.option(
    "--watch",
    "watch",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Reload when Python files under this directory change "
    "[default: the current directory]. Repeatable.",
)
@click.option("--no-reload", is_flag=True, help="Do not watch files.")
@inspector_options
def serve(
    app: str,
    port: int,
    record: Path | None,
    no_record: bool,
    show_secrets: bool,
    cert: Path | None,
    key: Path | None,
    watch: tuple[Path, ...],
    no_reload: bool,
    inspector_port: int | None,
    no_inspector: bool,
) -> None:
    """Serve the aiohttp webhook APP (module or module:attr) over HTTPS on 127.0.0.1.

    APP is imported from the current directory, like uvicorn and gunicorn do; attr is an
    aiohttp.web.Application or a zero-argument factory (default: create_app, then app).
    Each call prints one line; answers the apiserver would reject are flagged. Saving a
    Python file reloads the app without failing a call. Stop with Ctrl-C.
    """
    if record is not None and no_record:
        raise click.UsageError("--record and --no-record exclude each other")
    recording = None if no_record else (record or default_recording(app))
    feed = None if no_inspector else ExchangeFeed()
    stack = ServingStack.for_app(
        app,
        reload=not no_reload,
        watch=list(watch) or None,
        port=port,
        cert_file=cert,
        key_file=key,
        record=recording,
        redact=not show_secrets,
        subscribers=[ConsolePrinter(), *([feed] if feed is not None else [])],
    )
    inspector = None
    if feed is not None:
        inspector = InspectorServer(
            feed, port=inspector_port, replay_target=lambda: stack.upstream, source=f"serve {app}"
        )
    interrupted = asyncio.run(_serve_until_signal(stack, recording, inspector))
    sys.exit(130 if interrupted else 0)


async def _serve_until_signal(
    stack: ServingStack, recording: Path | None, inspector: InspectorServer | None = None
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
        if inspector is not None:
            await running.enter_async_context(inspector)  # a taken port fails before the app starts
        await running.enter_async_context(stack)
        if recording is not None:
            click.echo(f"recording to {recording}")
        if inspector is not None:
            click.echo(inspector_line(inspector))
        received = await stopped
    return received == signal.SIGINT
