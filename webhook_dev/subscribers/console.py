"""The console subscriber: one line per exchange, and the stack's news, for a human.

``16:20:01.123  Pod default/web-0  CREATE  allowed  3 ops  4.1 ms  [gen 2]``

Colours only on a terminal (rich decides); text is escaped, never interpreted as markup.
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.text import Text

from webhook_dev.admission.exchange import (
    Event,
    Exchange,
    GenerationExited,
    GenerationFailed,
    GenerationOutput,
    GenerationReady,
    ReloadStarted,
    Serving,
)
from webhook_dev.admission.review import display_name, patch_op_count


def exchange_line(exchange: Exchange) -> Text:
    """The one line for an exchange (also used by ``up``'s live view)."""
    line = Text(exchange.started.astimezone().strftime("%H:%M:%S.%f")[:-3] + "  ")
    request = exchange.request
    if not request:
        line.append(f"{exchange.http_status} ", style="bold red")
        line.append(exchange.error or "bad request", style="red")
        line.append(f"  {exchange.duration_ms:.1f} ms", style="dim")
        return line
    kind = (request.get("kind") or {}).get("kind", "?")
    line.append(f"{kind} {display_name(request)}  ", style="bold")
    line.append(f"{request.get('operation', '?')}  ")
    response = exchange.response
    if exchange.http_status != 200:
        line.append(f"HTTP {exchange.http_status}", style="bold red")
    elif response.get("allowed") is True:
        line.append("allowed", style="green")
    elif response.get("allowed") is False:
        message = (response.get("status") or {}).get("message", "")
        line.append("denied", style="bold yellow")
        if message:
            line.append(f" ({message})", style="yellow")
    else:
        line.append("no verdict", style="bold red")
    ops = patch_op_count(response)
    if ops is not None:
        line.append(f"  {ops} op{'s' if ops != 1 else ''}", style="cyan")
    line.append(f"  {exchange.duration_ms:.1f} ms", style="dim")
    if exchange.generation is not None:
        line.append(f"  [gen {exchange.generation}]", style="dim")
    return line


class ConsolePrinter:
    """Subscriber printing exchanges and events; tracebacks and flags under their line."""

    def __init__(self, file: TextIO | None = None, *, show_output: bool = True) -> None:
        self.console = Console(file=file, soft_wrap=True, highlight=False)
        self.show_output = show_output

    def on_exchange(self, exchange: Exchange) -> None:
        self._print(exchange_line(exchange))
        for flag in exchange.flags:
            self._print(Text(f"    ! {flag.code}: {flag.message}", style="yellow"))
        if exchange.error and exchange.request:
            self._print(Text(_indent(exchange.error), style="red"))

    def _print(self, text: Text) -> None:
        """rich on a terminal; plain text otherwise (rendering is the cost on the hot path)."""
        if self.console.is_terminal:
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
            case GenerationExited(generation=generation, returncode=returncode, kind=kind):
                self.console.print(
                    Text(f"{kind.value} {generation} exited ({returncode}); restarting", "bold red")
                )
            case GenerationOutput(generation=generation, line=text) if self.show_output:
                self.console.print(Text(f"  [{generation}] {text}", style="dim"))


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.rstrip().splitlines())
