"""The inspector's command-line parts: the flags ``serve`` and ``up`` share, and ``inspect``.

``webhook-dev inspect FILE...`` opens recordings in the same page, offline; with
``--app`` it also runs the app (reloaded on save) so the replay button works. Each file
is read through its index (built or brought up to date first, with a progress bar on a
terminal), so a recording of a million exchanges opens in about a second and the page
only ever receives the rows it shows; several files are merged by time.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from webhook_dev.commands import event_loop
from webhook_dev.commands.options import err_console, inspector_line
from webhook_dev.errors import ExitCode
from webhook_dev.inspector.feed import ExchangeFeed
from webhook_dev.inspector.server import DEFAULT_PORT, InspectorServer
from webhook_dev.inspector.store import RecordingStore
from webhook_dev.recording.index import RecordingIndex
from webhook_dev.recording.redaction_key import redaction_key

if TYPE_CHECKING:
    from webhook_dev.serving.upstreams.app import AppUpstream

# The app's workers, the reloader (watchfiles) and webbrowser are imported only when
# --app or --open asks for them: most of `inspect`'s time to ready is imports.


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
def inspect(
    files: tuple[Path, ...], port: int | None, app: str | None, no_reload: bool, open_browser: bool
) -> None:
    """Open the exchanges recorded in FILE... in the inspector page, offline.

    The page is the one `serve` and `up` show, without live updates. With --app, Replay
    sends a recorded request to your current code and shows whether the answer changed.
    """
    store = RecordingStore(open_indexes(files))
    feed = ExchangeFeed(capacity=1)  # live news only: the list comes from the store
    feed.status = {"generation": None, "state": "offline", "message": ""}
    workers = None
    if app is not None:
        from webhook_dev.reviews.exchange import Hooks
        from webhook_dev.serving.upstreams.app import AppUpstream

        workers = AppUpstream(app, hooks=Hooks([feed]))
    server = InspectorServer(
        feed,
        port=port,
        replay_target=(lambda: workers) if workers is not None else None,
        redaction_key=redaction_key(),
        source=", ".join(path.name for path in files),
        store=store,
    )
    try:
        event_loop.run(_inspect_until_signal(server, workers, not no_reload, open_browser))
    finally:
        store.close()
    sys.exit(ExitCode.OK)


def open_indexes(files: tuple[Path, ...]) -> list[RecordingIndex]:
    """Each file's index, fresh; building one shows a progress bar on a terminal."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TimeRemainingColumn

    indexes: list[RecordingIndex] = []
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as bar:
        for path in files:
            task = bar.add_task(f"indexing {path.name}", total=path.stat().st_size)

            def advance(done: int, total: int, task: TaskID = task) -> None:
                bar.update(task, completed=done)

            index, report = RecordingIndex.open(path, progress=advance)
            bar.remove_task(task)
            for warning in report.warnings:
                click.echo(f"warning: {warning}", err=True)
            if report.rebuilt and report.added:
                click.echo(
                    f"indexed {path.name}: {report.added} exchanges in {report.seconds:.1f} s",
                    err=True,
                )
            indexes.append(index)
    return indexes


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
            from webhook_dev.serving.reloader import Reloader

            reloader = Reloader(workers, [workers.cwd])
            await reloader.start()
    try:
        async with server:
            click.echo(f"{await server.store.count()} exchanges")
            click.echo(inspector_line(server))
            if open_browser:
                import webbrowser

                webbrowser.open(server.url)
            await stopped.wait()
    finally:
        if reloader is not None:
            await reloader.close()
        if workers is not None:
            await workers.close()
