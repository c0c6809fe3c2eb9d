"""``webhook-dev serve``: the user's webhook on https://127.0.0.1, recorded and hot-reloaded."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from webhook_dev.commands import event_loop
from webhook_dev.commands.inspect import inspector_line, inspector_options
from webhook_dev.errors import UsageError
from webhook_dev.inspector import ExchangeFeed, InspectorServer
from webhook_dev.paths import state_dir
from webhook_dev.serving.stack import ServingStack
from webhook_dev.subscribers.console import ConsolePrinter


def default_recording(app: str) -> Path:
    """``<state>/recordings/<time>-<module>.jsonl``: one file a session."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = app.partition(":")[0]
    return state_dir() / "recordings" / f"{stamp}-{name}.jsonl"


def loop_options(function: Any) -> Any:
    """``--record``, ``--no-record``, ``--watch`` and ``--no-reload``, shared by serve and up."""
    for option in reversed(
        [
            click.option(
                "--record",
                "record",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Append exchanges to this JSON Lines file "
                "[default: a new file in the state directory].",
            ),
            click.option("--no-record", is_flag=True, help="Record nothing."),
            click.option(
                "--watch",
                "watch",
                multiple=True,
                help="Reload when Python files under this directory change "
                "[default: the current directory]. With --run: a directory or a glob of files "
                "('*.go', 'cmd/*') [default: source files, not VCS or build dirs]. Repeatable.",
            ),
            click.option("--no-reload", is_flag=True, help="Do not watch files."),
        ]
    ):
        function = option(function)
    return function


def upstream_options(function: Any) -> Any:
    """``--upstream URL [--run CMD [--build CMD]]``, shared by ``serve`` and ``up``."""
    for option in reversed(
        [
            click.option(
                "--upstream",
                metavar="URL",
                help="Instead of APP, forward to the webhook you run at this http(s) URL "
                "(any language); the call's path is appended.",
            ),
            click.option(
                "--upstream-ca",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="CA (PEM) to verify an https --upstream with [default: the system's].",
            ),
            click.option(
                "--upstream-insecure", is_flag=True, help="Do not verify an https --upstream."
            ),
            click.option(
                "--run",
                "run_command",
                metavar="CMD",
                help="Start CMD (it must listen at --upstream) and restart it on save; "
                "calls wait while it restarts.",
            ),
            click.option(
                "--build",
                "build_command",
                metavar="CMD",
                help="Build with CMD before each (re)start; the old process serves until "
                "a build succeeds.",
            ),
        ]
    ):
        function = option(function)
    return function


def check_app_or_upstream(app: str | None, upstream: str | None, run: str | None) -> None:
    """:raises UsageError: not exactly one of APP and --upstream, or --run without it."""
    if app is not None and upstream is not None:
        raise UsageError("give either APP (an aiohttp app) or --upstream URL, not both")
    if app is None and upstream is None:
        raise UsageError("give APP (an aiohttp app, module[:attr]) or --upstream URL")
    if run is not None and upstream is None:
        raise UsageError("--run needs --upstream URL: the address CMD listens at")


def app_watch_dirs(watch: tuple[str, ...]) -> list[Path] | None:
    """For APP, ``--watch`` names directories; :raises UsageError: one that is not."""
    for entry in watch:
        if not Path(entry).is_dir():
            raise UsageError(f"--watch {entry}: not a directory (globs are for --run)")
    return [Path(entry) for entry in watch] or None


def recording_name(app: str | None, upstream: str | None) -> str:
    """What a default recording is named after: the module, or the upstream's port."""
    if app is not None:
        return app
    port = (upstream or "").rstrip("/").rsplit(":", 1)[-1].split("/")[0]
    return f"upstream-{port}" if port.isdigit() else "upstream"


@click.command()
@click.argument("app", required=False)
@upstream_options
@click.option("--port", default=8443, show_default=True, help="Port on 127.0.0.1; 0: any free.")
@loop_options
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
@inspector_options
def serve(
    app: str | None,
    upstream: str | None,
    upstream_ca: Path | None,
    upstream_insecure: bool,
    run_command: str | None,
    build_command: str | None,
    port: int,
    record: Path | None,
    no_record: bool,
    show_secrets: bool,
    cert: Path | None,
    key: Path | None,
    watch: tuple[str, ...],
    no_reload: bool,
    inspector_port: int | None,
    no_inspector: bool,
) -> None:
    """Serve the aiohttp webhook APP (module or module:attr) over HTTPS on 127.0.0.1.

    APP is imported from the current directory, like uvicorn and gunicorn do; attr is an
    aiohttp.web.Application or a zero-argument factory (default: create_app, then app).
    Each call prints one line; answers the apiserver would reject are flagged. Saving a
    Python file reloads the app without failing a call. Stop with Ctrl-C.

    Any language: --upstream URL forwards to your own webhook server instead, and
    --run CMD starts and restarts it on save, holding calls while it restarts.
    """
    if record is not None and no_record:
        raise click.UsageError("--record and --no-record exclude each other")
    check_app_or_upstream(app, upstream, run_command)
    recording = None if no_record else (record or default_recording(recording_name(app, upstream)))
    common: dict[str, Any] = {
        "port": port,
        "cert_file": cert,
        "key_file": key,
        "record": recording,
        "redact": not show_secrets,
        "subscribers": [ConsolePrinter()],
    }
    feed = None if no_inspector else ExchangeFeed()
    if feed is not None:
        common["subscribers"].append(feed)
    if upstream is not None:
        stack = ServingStack.for_upstream(
            upstream,
            run=run_command,
            build=build_command,
            ca_file=upstream_ca,
            insecure=upstream_insecure,
            reload=not no_reload,
            watch=watch,
            **common,
        )
    else:
        stack = ServingStack.for_app(
            app or "", reload=not no_reload, watch=app_watch_dirs(watch), **common
        )
    inspector = None
    if feed is not None:
        inspector = InspectorServer(
            feed,
            port=inspector_port,
            replay_target=lambda: stack.upstream,
            source=f"serve {app or upstream}",
        )
    interrupted = event_loop.run(_serve_until_signal(stack, recording, inspector))
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
