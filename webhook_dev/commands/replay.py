"""``webhook-dev replay``: recorded requests against the current code, compared by meaning.

Exit codes: 0 every answer matches; 1 some differ; 2 bad usage or an unreadable file
(with ``--strict``, also a damaged line; without it a damaged line is skipped with a
warning). Results are printed as they come and the recording is streamed, so a file
larger than memory replays in constant memory (``--json`` keeps one small dict a result).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from webhook_dev.errors import ExitCode, UsageError
from webhook_dev.recording.reader import RecordingWarning, open_check
from webhook_dev.replay.replayer import ReplayResult, render, replay_stream
from webhook_dev.serving.upstream import Upstream
from webhook_dev.serving.upstreams.app import AppUpstream
from webhook_dev.serving.upstreams.url import UrlUpstream


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--app", help="Run this aiohttp APP (module or module:attr) and replay to it.")
@click.option("--url", help="Replay to a webhook you run at this URL instead.")
@click.option(
    "--cacert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CA to verify --url with [default: webhook-dev's local CA and the system's].",
)
@click.option(
    "--idempotence",
    is_flag=True,
    help="Also feed each patched object back; fail if a second pass changes it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print results as one JSON document.")
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse a recording with a damaged line (exit 2) instead of skipping the line.",
)
def replay(
    files: tuple[Path, ...],
    app: str | None,
    url: str | None,
    cacert: Path | None,
    idempotence: bool,
    as_json: bool,
    strict: bool,
) -> None:
    """Send each request recorded in FILE... to the current code and compare the answers.

    Answers match when they agree on allowed, status code/reason/message, warnings and
    the object that results from the patch (its text and op order do not matter).
    """
    if (app is None) == (url is None):
        raise UsageError("give exactly one of --app APP or --url URL")
    target: Upstream = (
        AppUpstream(app)
        if app is not None
        else UrlUpstream.for_replay(url or "", ca_file=cacert or _local_ca())
    )
    report = _Report(as_json)
    asyncio.run(_run(target, files, idempotence, strict, report))
    report.finish()
    sys.exit(ExitCode.FAILED if report.failed else ExitCode.OK)


class _Report:
    """Prints each result as it comes (or keeps its JSON), counting as it goes."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console(soft_wrap=True, highlight=False)
        self.passed = self.failed = 0
        self.results: list[dict[str, object]] = []

    def add(self, result: ReplayResult) -> None:
        if result.passed:
            self.passed += 1
        else:
            self.failed += 1
        if self.as_json:
            self.results.append(result.to_json())
        elif result.passed:
            self.console.print(Text(f"ok    {result.where}  {result.title}", style="green"))
        else:
            self.console.print(Text(f"FAIL  {result.where}  {result.title}", style="bold red"))
            self.console.print(Text(render(result)))

    def finish(self) -> None:
        if self.as_json:
            summary = {"passed": self.passed, "failed": self.failed, "results": self.results}
            click.echo(json.dumps(summary, indent=2, default=str))
            return
        style = "bold red" if self.failed else "bold green"
        self.console.print(Text(f"{self.passed} passed, {self.failed} failed", style=style))


async def _run(
    target: Upstream, files: tuple[Path, ...], idempotence: bool, strict: bool, report: _Report
) -> None:
    for path in files:
        open_check(path)  # a missing file fails (exit 2) before the app starts
    if isinstance(target, AppUpstream):
        await target.start(require_ready=True)
    else:
        await target.start()
    try:
        stream = replay_stream(files, target, idempotence=idempotence, strict=strict)
        async for item in stream:
            if isinstance(item, RecordingWarning):
                click.echo(f"warning: {item}", err=True)
            else:
                report.add(item)
    finally:
        await target.close()


def _local_ca() -> Path | None:
    from webhook_dev.tls.authority import LocalAuthority

    return LocalAuthority.load_or_create().ca_cert_path
