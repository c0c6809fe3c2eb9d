"""``webhook-dev replay``: recorded requests against the current code, compared by meaning.

Exit codes: 0 every answer matches; 1 some differ; 2 bad usage or an unreadable file
(a file in which no line can be read; with ``--strict``, any damaged line). Without
``--strict`` a damaged line (torn by a crash or a full disk, a hand edit) is skipped
with a warning naming ``file:line``.

Large recordings: the files are streamed and each result printed as it comes (constant
memory); ``--jobs N`` replays over up to one process a CPU, each serving the ``--app``
itself or with its own ``--url`` client (:mod:`~webhook_dev.replay.shards`), N calls in
flight in all, the report keeping the recording's order; ``--where`` and ``--sample`` pick a
subset; a progress bar shows on a terminal (stderr); ``--quiet`` prints only failures,
warnings and the summary.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

import click
from rich.console import Console

from webhook_dev.commands.policy_option import policy_evaluator, policy_files_option
from webhook_dev.errors import ExitCode, RecordingError, UsageError
from webhook_dev.recording import query as filters
from webhook_dev.recording import stream
from webhook_dev.recording.redaction_key import redaction_key
from webhook_dev.replay.batch import Selection, Skipped, replay_in_order, selected, selected_raw
from webhook_dev.replay.outcome import Outcome, outcome_of
from webhook_dev.replay.shards import ShardConfig, replay_sharded, shard_count
from webhook_dev.reviews.comparison import NOTHING_IGNORED, Ignore
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
    help="Also feed each patched object back and fail if a second pass changes it; send "
    "each converted object back to its version and fail unless it returns as sent.",
)
@click.option(
    "--ignore",
    "ignore_pointers",
    multiple=True,
    metavar="JSONPOINTER",
    help="Do not count differences at this JSON pointer into an answer's meaning "
    "(/warnings, /status/message, /auditAnnotations/KEY, /object/metadata/annotations/KEY; "
    "repeatable; docs/comparison.md).",
)
@click.option("--json", "as_json", is_flag=True, help="Print results as one JSON document.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Calls in flight at once, over up to one replay process a CPU.",
)
@click.option(
    "--where",
    metavar="QUERY",
    help="Replay only exchanges matching QUERY, the inspector's filter syntax "
    "(e.g. 'kind:Pod result:denied ns:team-*').",
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    help="Replay N exchanges picked at random (the same N each run), in recorded order.",
)
@policy_files_option(
    "Instead of code, decide each request by the admission policies in this file "
    "(Validating/MutatingAdmissionPolicy, bindings, params; repeatable) with "
    "kube-apiserver's own plugins, and compare with the webhook's recorded answer."
)
@click.option(
    "--webhook",
    "webhook_side",
    type=click.Choice(["validating", "mutating"]),
    help="With --policy: which configuration's webhook answered the recorded calls "
    "[default: from each call's path, /validate... or /mutate...].",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only failures, warnings and the summary.")
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
    jobs: int,
    where: str | None,
    sample: int | None,
    quiet: bool,
    strict: bool,
    policies: tuple[Path, ...],
    webhook_side: str | None,
    ignore_pointers: tuple[str, ...],
) -> None:
    """Send each request recorded in FILE... to the current code and compare the answers.

    Admission answers match when they agree on allowed, status code/reason/message,
    warnings and the object that results from the patch (its text and op order do not
    matter); conversion answers when they agree on the result and on each converted
    object as the apiserver keeps it.

    With --policy, admission policies decide instead of code, and each decision is
    compared with the webhook's recorded answer: allowed, the code and message of a
    denial, warnings, and the object after a mutating webhook's patch against the object
    after the policies' mutations. A request whose decision needs what the recording
    lacks (the Namespace's labels, the authorizer, a param) is not compared and counted
    apart; conversions are never compared with a policy.
    """
    if policies:
        if app is not None or url is not None or idempotence:
            raise UsageError("--policy replaces --app/--url (and --idempotence): give one")
    elif (app is None) == (url is None):
        raise UsageError("give exactly one of --app APP or --url URL, or --policy FILE")
    selection = Selection(where=filters.parse(where or ""), sample=sample)
    try:
        ignore = Ignore.parse(ignore_pointers)
    except ValueError as error:
        raise UsageError(str(error)) from error
    if ignore and policies:
        raise UsageError("--ignore is for replays to code (--app/--url), not --policy")
    for path in files:
        if not path.is_file():
            raise RecordingError(f"recording {path} does not exist")
    if policies:
        _replay_policies(
            files, policies, selection, where or "", webhook_side, jobs, as_json, quiet, strict
        )
        return
    shards = shard_count(jobs)
    report = _Report(as_json, _expected(files, selection), quiet=quiet)
    try:
        if shards > 1:
            config = ShardConfig(
                app=app,
                url=url,
                cacert=str(cacert or _local_ca() or "") if url is not None else None,
                cwd=os.getcwd(),
                jobs=-(-jobs // shards),
                idempotence=idempotence,
                where=where or "",
                as_json=as_json,
                ignore=ignore.pointers,
            )
            _event_loop(_run_sharded(config, shards, files, selection, report, strict))
        else:
            target: Upstream = (
                AppUpstream(app, keep_spare=False)
                if app is not None
                else UrlUpstream.for_replay(url or "", ca_file=cacert or _local_ca())
            )
            _event_loop(
                _run(target, files, selection, jobs, idempotence, report, strict, ignore=ignore)
            )
    finally:
        report.close()
    report.finish()
    sys.exit(ExitCode.FAILED if report.failed else ExitCode.OK)


def _replay_policies(
    files: tuple[Path, ...],
    policies: tuple[Path, ...],
    selection: Selection,
    where: str,
    webhook_side: str | None,
    jobs: int,
    as_json: bool,
    quiet: bool,
    strict: bool,
) -> None:
    """With ``--jobs`` over a CPU, sharded as replay is: each shard decodes, decides (with
    an evaluator of its own) and compares its batches of lines, so the Python side runs
    on every CPU too (docs/benchmarks.md)."""
    binary = policy_evaluator()
    report = _Report(as_json, _expected(files, selection), quiet=quiet)
    shards = shard_count(jobs)
    try:
        if shards > 1:
            config = ShardConfig(
                app=None,
                url=None,
                cacert=None,
                cwd=os.getcwd(),
                jobs=-(-jobs // shards),
                idempotence=False,
                where=where,
                as_json=as_json,
                policy_binary=str(binary),
                policies=tuple(str(path.resolve()) for path in policies),
                side=webhook_side,
            )
            _event_loop(_run_sharded(config, shards, files, selection, report, strict))
        else:
            _event_loop(
                _run_policies(
                    binary, files, policies, selection, webhook_side, jobs, report, strict
                )
            )
    finally:
        report.close()
    report.finish()
    sys.exit(ExitCode.FAILED if report.failed else ExitCode.OK)


async def _run_policies(
    binary: Path,
    files: tuple[Path, ...],
    policies: tuple[Path, ...],
    selection: Selection,
    webhook_side: str | None,
    jobs: int,
    report: _Report,
    strict: bool,
) -> None:
    from webhook_dev.policy.check import check_in_order, render
    from webhook_dev.policy.decision import Side
    from webhook_dev.policy.evaluator import PolicyEvaluator
    from webhook_dev.replay.replayer import title_of

    _check_files(files, selection, strict)
    # Started one after the other: a refused policy is reported once, before any other.
    evaluators = [await PolicyEvaluator.start(binary, policies)]
    try:
        for _ in range(1, shard_count(jobs)):
            evaluators.append(await PolicyEvaluator.start(binary, policies))
        side = cast("Side | None", webhook_side)  # click.Choice allows only a Side
        checks = check_in_order(
            selected(files, selection, strict=strict),
            evaluators,
            jobs=jobs,
            side=side,
            objects=report.as_json,
        )
        async for item in checks:
            if isinstance(item, Skipped):
                click.echo(f"warning: {item}", err=True)
                continue
            report.add(
                Outcome(
                    where=item.where,
                    title=title_of(item.exchange),
                    passed=item.passed,
                    details="" if item.passed or report.as_json else render(item),
                    record=item.to_json() if report.as_json else None,
                    compared=item.compared,
                )
            )
    finally:
        await asyncio.gather(*(evaluator.close() for evaluator in evaluators))


class _Report:
    """Prints each result as it comes (JSON: one small dict a result, streamed), counts,
    and shows progress on a terminal.

    Plain writes, not rich's: at thousands of results a second rich's rendering of each
    ``ok`` line cost a tenth of the replay's time."""

    def __init__(self, as_json: bool, expected: int | None, *, quiet: bool = False) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.as_json = as_json
        self.quiet = quiet
        self.passed = self.failed = self.not_compared = 0
        self._out = sys.stdout
        self._color = Console().is_terminal
        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
            disable=not Console(stderr=True).is_terminal,
        )
        self._task = self._progress.add_task("replaying", total=expected)
        self._progress.start()
        if as_json:
            self._out.write('{"results": [\n')

    def add(self, result: Outcome) -> None:
        first = self.passed + self.failed + self.not_compared == 0
        if not result.compared:
            self.not_compared += 1
        elif result.passed:
            self.passed += 1
        else:
            self.failed += 1
        self._progress.advance(self._task)
        if self.as_json:
            text = json.dumps(result.record, default=str)
            self._out.write(text if first else ",\n" + text)
        elif not result.compared:
            if not self.quiet:
                self._line(f"skip  {result.where}  {result.title}", "yellow")
                self._out.write(result.details + "\n")
        elif result.passed:
            if not self.quiet:
                self._line(f"ok    {result.where}  {result.title}", "green")
        else:
            self._line(f"FAIL  {result.where}  {result.title}", "red", bold=True)
            if result.details:
                self._out.write(result.details + "\n")

    def _line(self, text: str, color: str, *, bold: bool = False) -> None:
        if self._color:
            text = click.style(text, fg=color, bold=bold)
        self._out.write(text + "\n")

    def close(self) -> None:
        self._progress.stop()
        self._out.flush()

    def finish(self) -> None:
        apart = f", {self.not_compared} not compared" if self.not_compared else ""
        if self.as_json:
            self._out.write(
                f'\n], "passed": {self.passed}, "failed": {self.failed}, '
                f'"not_compared": {self.not_compared}}}\n'
            )
        else:
            color = "red" if self.failed else "green"
            self._line(f"{self.passed} passed, {self.failed} failed{apart}", color, bold=True)
        self._out.flush()


def _expected(files: tuple[Path, ...], selection: Selection) -> int | None:
    """How many results to expect, for the progress bar (only on a terminal: counting
    lines reads the files once more)."""
    if not Console(stderr=True).is_terminal:
        return None
    if selection.where:
        return selection.sample
    lines = 0
    for path in files:
        with path.open("rb") as file:
            while chunk := file.read(1 << 22):
                lines += chunk.count(b"\n")
    return min(lines, selection.sample) if selection.sample else lines


def _event_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where installed: the replayer's socket I/O is then compiled."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def _check_files(files: tuple[Path, ...], selection: Selection, strict: bool) -> None:
    if strict:  # read every file through first: a damaged line refuses before any call
        for _ in selected(files, Selection(where=selection.where), strict=True):
            pass
    else:
        for path in files:
            _check_some_line_reads(path)


async def _run(
    target: Upstream,
    files: tuple[Path, ...],
    selection: Selection,
    jobs: int,
    idempotence: bool,
    report: _Report,
    strict: bool = False,
    *,
    ignore: Ignore = NOTHING_IGNORED,
) -> None:
    _check_files(files, selection, strict)
    try:
        if isinstance(target, AppUpstream):
            await target.start(require_ready=True)
        else:
            await target.start()
        results = replay_in_order(
            selected(files, selection, strict=strict),
            [target],
            jobs=jobs,
            idempotence=idempotence,
            redaction_key=redaction_key(),
            ignore=ignore,
        )
        async for item in results:
            if isinstance(item, Skipped):
                click.echo(f"warning: {item}", err=True)
            else:
                report.add(outcome_of(item, as_json=report.as_json))
    finally:
        await target.close()


async def _run_sharded(
    config: ShardConfig,
    shards: int,
    files: tuple[Path, ...],
    selection: Selection,
    report: _Report,
    strict: bool,
) -> None:
    _check_files(files, selection, strict)
    items = selected_raw(files, selection, strict=strict)
    async for item in replay_sharded(items, config, shards):
        if isinstance(item, Skipped):
            click.echo(f"warning: {item}", err=True)
        else:
            report.add(item)


def _check_some_line_reads(path: Path) -> None:
    """A file in which no line at all can be read is not a recording (exit 2), even
    when damaged lines are skipped."""
    first_error: RecordingError | None = None
    for line in stream.lines(path):
        if line.exchange is not None:
            return
        first_error = first_error or line.error
    if first_error is not None:
        raise RecordingError(f"{path} is not a webhook-dev recording: {first_error}")


def _local_ca() -> Path | None:
    from webhook_dev.tls.authority import LocalAuthority

    return LocalAuthority.load_or_create().ca_cert_path
