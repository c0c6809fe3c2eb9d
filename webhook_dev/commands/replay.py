"""``webhook-dev replay``: recorded requests against the current code, compared by meaning.

Exit codes: 0 every answer matches; 1 some differ; 2 bad usage or an unreadable file.
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
from webhook_dev.replay.replayer import ReplayResult, render, replay_files
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
def replay(
    files: tuple[Path, ...],
    app: str | None,
    url: str | None,
    cacert: Path | None,
    idempotence: bool,
    as_json: bool,
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
    results, warnings = asyncio.run(_run(target, files, idempotence))
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    passed = sum(result.passed for result in results)
    failed = len(results) - passed
    if as_json:
        summary = {"passed": passed, "failed": failed, "results": [r.to_json() for r in results]}
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        _print(results, passed, failed)
    sys.exit(ExitCode.FAILED if failed else ExitCode.OK)


async def _run(
    target: Upstream, files: tuple[Path, ...], idempotence: bool
) -> tuple[list[ReplayResult], list[str]]:
    if isinstance(target, AppUpstream):
        await target.start(require_ready=True)
    else:
        await target.start()
    try:
        return await replay_files(files, target, idempotence=idempotence)
    finally:
        await target.close()


def _print(results: list[ReplayResult], passed: int, failed: int) -> None:
    console = Console(soft_wrap=True, highlight=False)
    for result in results:
        if result.passed:
            console.print(Text(f"ok    {result.where}  {result.title}", style="green"))
        else:
            console.print(Text(f"FAIL  {result.where}  {result.title}", style="bold red"))
            console.print(Text(render(result)))
    style = "bold red" if failed else "bold green"
    console.print(Text(f"{passed} passed, {failed} failed", style=style))


def _local_ca() -> Path | None:
    from webhook_dev.tls.authority import LocalAuthority

    return LocalAuthority.load_or_create().ca_cert_path
