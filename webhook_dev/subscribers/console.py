"""The console subscriber: one line per exchange, and the stack's news, for a human.

``16:20:01.123  Pod default/web-0  CREATE  allowed  3 ops  4.1 ms  [gen 2]``

Colours only on a terminal (rich decides); text is escaped, never interpreted as markup.
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.text import Text

from webhook_dev.policy.decision import AGREES, NOT_COMPARED, outcome_line
from webhook_dev.recording.redaction import may_hold_secrets_exchange, redact
from webhook_dev.recording.redaction_key import redaction_key
from webhook_dev.reviews.exchange import (
    BadMessage,
    ChangesPassedOver,
    Event,
    Exchange,
    GenerationExited,
    GenerationFailed,
    GenerationMemory,
    GenerationOutput,
    GenerationReady,
    RecordingFailed,
    RecordingResumed,
    ReloadStarted,
    Serving,
    now,
)
from webhook_dev.reviews.shadow import ShadowCall

Segments = list[tuple[str, str]]  # (text, rich style) pieces of one line
_GOOD_RESULTS = ("allowed", "converted")  # the others (denied, failed) say why


def exchange_line(exchange: Exchange) -> Text:
    """The one line for an exchange (also used by ``up``'s live view)."""
    return Text.assemble(*exchange_segments(exchange))


def exchange_segments(exchange: Exchange) -> Segments:
    """The line as styled pieces: joined as plain text off a terminal, where building a
    rich ``Text`` for every call was a visible share of the proxy's time."""
    line: Segments = [(exchange.started.astimezone().strftime("%H:%M:%S.%f")[:-3] + "  ", "")]
    request = exchange.request
    if exchange.client_closed:  # the client's doing: one quiet line, no status of ours
        line.append((exchange.error or "the client closed the connection", "dim"))
        return line
    review_kind = exchange.review_kind
    if not request or review_kind is None:
        line.append((f"{exchange.http_status} ", "bold red"))
        line.append((exchange.error or "bad request", "red"))
        line.append((f"  {format_ms(exchange.duration_ms)}", "dim"))
        return line
    subject = review_kind.subject(request)
    line.append((f"{subject.kind or '?'} {subject.name}  ", "bold"))
    target = f" to {subject.target}" if subject.target else ""
    line.append((f"{subject.operation or '?'}{target}  ", ""))
    response = exchange.response
    result = review_kind.result(response)
    if exchange.http_status != 200:
        line.append((f"HTTP {exchange.http_status}", "bold red"))
    elif result in _GOOD_RESULTS:
        line.append((result, "green"))
    elif result is not None:
        message = review_kind.message(response)
        line.append((result, "bold yellow"))
        if message:
            line.append((f" ({message})", "yellow"))
    else:
        line.append(("no verdict", "bold red"))
    ops = exchange.patch_ops()
    if ops is not None:
        line.append((f"  {ops} op{'s' if ops != 1 else ''}", "cyan"))
    line.append((f"  {format_ms(exchange.duration_ms)}", "dim"))
    if exchange.generation is not None:
        line.append((f"  [gen {exchange.generation}]", "dim"))
    if exchange.shadow is not None:
        line.extend(shadow_segments(exchange.shadow))
    return line


def shadow_segments(call: ShadowCall) -> Segments:
    """``up --shadow``'s mark: how the local code's answer (the line) compares with
    production's, which decided. ``≠`` names the fields that differ."""
    comparison = call.comparison
    if comparison is None:
        return [("  … comparing", "dim")]
    if not comparison.comparable:
        return [(f"  ? not compared: {'; '.join(comparison.unknown)}", "dim yellow")]
    marks: Segments = []
    if comparison.differences:
        marks.append((f"  ≠ production: {', '.join(comparison.fields)}", "bold magenta"))
    else:
        marks.append(("  = production", "green"))
    if comparison.noise:
        noise = ", ".join(difference.field for difference in comparison.noise)
        marks.append((f"  (noise: {noise})", "dim"))
    return marks


def policy_mark(exchange: Exchange) -> Text | None:
    """The line under a call where ``--policy`` decided otherwise (``≠``) or could not
    compare (``?``); ``None`` where it agrees or was not asked."""
    record = exchange.policy
    if record is None or record.get("outcome") == AGREES:
        return None
    if record.get("outcome") == NOT_COMPARED:
        return Text(f"    ? {outcome_line(record)}", style="dim")
    return Text(f"    ≠ {outcome_line(record)}", style="bold magenta")


class ConsolePrinter:
    """Subscriber printing exchanges and events; tracebacks and flags under their line.

    Secret values are redacted as the recorder and the inspector redact them (same key,
    same markers: :func:`~webhook_dev.recording.redaction.redact`) in everything printed
    for an exchange — a deny message, a warning, a flag, the handler's traceback —
    unless ``redact=False`` (``--show-secrets``). A handler's own output (``print``,
    logging) is the user's to print, and is shown as it comes.
    """

    def __init__(
        self, file: TextIO | None = None, *, show_output: bool = True, redact: bool = True
    ) -> None:
        self.console = Console(file=file, soft_wrap=True, highlight=False)
        self.show_output = show_output
        self._terminal = self.console.is_terminal  # rich asks isatty and the environment
        self._redact = redact
        self._key: bytes | None = None

    def shown(self, exchange: Exchange) -> Exchange:
        """``exchange`` as the console may show it (a redacted copy when it holds secrets)."""
        if not self._redact or not may_hold_secrets_exchange(exchange):
            return exchange
        if self._key is None:
            self._key = redaction_key()
        return redact(exchange, self._key)

    def on_exchange(self, exchange: Exchange) -> None:
        exchange = self.shown(exchange)
        segments = exchange_segments(exchange)
        if self._terminal:
            self._print(Text.assemble(*segments))
        else:
            self.console.file.write("".join(text for text, _ in segments) + "\n")
        for flag in exchange.flags:
            self._print(Text(f"    ! {flag.code}: {flag.message}", style="yellow"))
        if exchange.error and exchange.request:
            self._print(Text(_indent(exchange.error), style="red"))
        mark = policy_mark(exchange)
        if mark is not None:
            self._print(mark)
        if not self._terminal:
            self.console.file.flush()

    def _print(self, text: Text) -> None:
        """rich on a terminal; plain text otherwise (rendering is the cost on the hot path)."""
        if self._terminal:
            self.console.print(text)
        else:
            self.console.file.write(text.plain + "\n")
            self.console.file.flush()

    def on_event(self, event: Event) -> None:
        match event:
            case Serving(url=url):
                self.console.print(Text(f"serving {url}", style="bold"))
            case ReloadStarted(reason=reason, first=first):
                self.console.print(Text(reason if first else f"reloading: {reason}", style="dim"))
            case ChangesPassedOver(files=files, command=command):
                self.console.print(
                    Text(
                        f"not reloading for {files}: changed while `{command}` started "
                        "(taken as its own output; save again if it was you)",
                        style="dim",
                    )
                )
            case GenerationReady(generation=generation, pid=pid, startup_ms=startup_ms, kind=kind):
                self.console.print(
                    Text(
                        f"{kind.value} {generation} ready (pid {pid}, {startup_ms:.0f} ms)",
                        "green",
                    )
                )
            case GenerationFailed(
                generation=generation, error=error, still_serving=serving, kind=kind
            ):
                keeps = (
                    f"{kind.value} {serving} keeps serving"
                    if serving is not None
                    else f"no {kind.value} is serving: calls get 503 until you fix it"
                )
                self.console.print(
                    Text(f"{kind.value} {generation} failed to start; {keeps}:", style="bold red")
                )
                self.console.print(Text(_indent(error), style="red"))
            case GenerationExited(
                generation=generation, returncode=returncode, kind=kind, reason=reason
            ):
                why = reason or f"exited ({returncode})"
                self.console.print(Text(f"{kind.value} {generation} {why}; restarting", "bold red"))
            case GenerationMemory(
                generation=generation, rss_bytes=rss, over_limit=True, limit_bytes=limit
            ):
                self.console.print(
                    Text(
                        f"worker {generation} uses {_mib(rss)} of memory (warning past "
                        f"{_mib(limit)}): does a handler keep something per call?",
                        style="bold yellow",
                    )
                )
            case BadMessage(peer=peer, message=message):
                stamp = now().astimezone().strftime("%H:%M:%S.%f")[:-3]
                source = f" from {peer}" if peer else ""
                self.console.print(
                    Text(f"{stamp}  400 malformed HTTP{source}: {message}", style="red")
                )
            case RecordingFailed(path=path, error=error, missed=missed):
                self.console.print(
                    Text(
                        f"recording to {path} failed ({error}): {missed} exchange"
                        f"{'s' if missed != 1 else ''} not recorded so far; the file keeps "
                        "only whole lines, and recording resumes once a write succeeds",
                        style="bold red",
                    )
                )
            case RecordingResumed(path=path, missed=missed, since=since):
                self.console.print(
                    Text(
                        f"recording to {path} resumed: {missed} exchange"
                        f"{'s' if missed != 1 else ''} not recorded since "
                        f"{since.astimezone().strftime('%H:%M:%S')}",
                        style="bold yellow",
                    )
                )
            case GenerationOutput(generation=generation, line=text) if self.show_output:
                self.console.print(Text(f"  [{generation}] {text}", style="dim"))


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


def format_ms(value: float) -> str:
    """A duration as the console shows it: 0.42 ms, 3.1 ms, 250 ms."""
    if value < 1:
        return f"{value:.2f} ms"
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.rstrip().splitlines())
