"""``up``'s live status on a terminal: tunnel, calls per second, last calls, recording.

A subscriber on the stack's hook like the recorder. On a terminal it keeps a small panel
at the bottom (rich ``Live``) while each call's line scrolls above it; elsewhere (CI
logs, pipes) ``up`` prints plain lines instead, and this class is not used.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from webhook_dev.policy.decision import AGREES, DIFFERS, NOT_COMPARED
from webhook_dev.reviews.exchange import (
    BadMessage,
    Event,
    Exchange,
    GenerationExited,
    GenerationFailed,
    GenerationMemory,
    RecordingFailed,
    RecordingMissed,
    RecordingResumed,
)
from webhook_dev.subscribers.call_stats import RATE_WINDOW_SECONDS, CallStats
from webhook_dev.subscribers.console import ConsolePrinter, exchange_line, policy_mark

LAST_CALLS = 5
# The stack's news worth interrupting the panel for: something broke, or costs something.
_SHOWN_EVENTS = (
    GenerationExited,
    GenerationFailed,
    GenerationMemory,
    RecordingFailed,
    RecordingMissed,
    RecordingResumed,
    BadMessage,
)


@dataclass(frozen=True)
class SessionFacts:
    """What the panel shows besides calls; read from the session on each refresh."""

    subject: str
    tunnel: str
    endpoint: str
    recording: str | None
    reconnects: int
    # CRDs whose conversion calls come here: nothing softens a failed conversion.
    conversions: tuple[str, ...] = ()
    # The in-cluster Pod converting what the local code cannot ("Pod NS/NAME:PORT").
    conversion_fallback: str | None = None
    shadow: str | None = None  # up --shadow: "N compared, M differed (K noisy)"


class LiveView:
    """Prints each exchange's line above a live status panel."""

    def __init__(
        self,
        console: Console,
        facts: Callable[[], SessionFacts | None],
        clock: Callable[[], float] = time.monotonic,
        *,
        redact: bool = True,
    ) -> None:
        self.console = console
        self._facts = facts
        self.stats = CallStats(clock)
        self._last: deque[Text] = deque(maxlen=LAST_CALLS)
        self._printer = ConsolePrinter(show_output=False, redact=redact)
        self._printer.console = console  # the stack's news, printed above the panel
        self.worker_rss: int | None = None
        self.recording_note: str | None = None
        # --policy: how many calls the policies agreed on, differed on, could not compare.
        self.policy_outcomes: Counter[str] = Counter()
        self._live = Live(
            console=console, refresh_per_second=4, get_renderable=self.render, transient=True
        )

    def start(self) -> None:
        self._live.start()

    def stop(self) -> None:
        self._live.stop()

    def on_exchange(self, exchange: Exchange) -> None:
        shown = self._printer.shown(exchange)
        line = exchange_line(shown)
        self.console.print(line)
        self.stats.on_exchange(exchange)
        mark = policy_mark(shown)  # a policy's message may quote a Secret's value too
        if mark is not None:
            self.console.print(mark)
            line = Text.assemble(line, "\n", mark)
        if exchange.policy is not None:
            self.policy_outcomes[str(exchange.policy.get("outcome"))] += 1
        self._last.append(line)

    def on_event(self, event: Event) -> None:
        """Print what the stack says (a worker replaced, recording failing, memory past
        the warning) above the panel, and keep worker memory and recording state in it."""
        if not isinstance(event, _SHOWN_EVENTS):
            return  # up says what it starts itself
        if isinstance(event, GenerationMemory):
            self.worker_rss = event.rss_bytes
        elif isinstance(event, RecordingFailed | RecordingMissed):
            self.recording_note = f"failing: {event.missed} exchanges not recorded"
        elif isinstance(event, RecordingResumed):
            self.recording_note = f"resumed; {event.missed} exchanges were not recorded"
        self._printer.on_event(event)

    @property
    def total(self) -> int:
        return self.stats.calls

    def calls_per_second(self) -> float:
        return self.stats.per_second()

    def render(self) -> Any:
        facts = self._facts()
        return render_panel(
            facts,
            self.calls_per_second(),
            self.total,
            list(self._last),
            worker_rss=self.worker_rss,
            recording_note=self.recording_note,
            policy_outcomes=self.policy_outcomes,
        )


def render_panel(
    facts: SessionFacts | None,
    rate: float,
    total: int,
    last: list[Text],
    *,
    worker_rss: int | None = None,
    recording_note: str | None = None,
    policy_outcomes: Mapping[str, int] | None = None,
) -> Panel:
    """The panel itself (pure, so it can be tested without a terminal)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    if facts is None:
        table.add_row("state", "starting…")
    else:
        style = "green" if facts.tunnel == "up" else "bold yellow"
        tunnel = Text(facts.tunnel, style=style)
        tunnel.append(f"  {facts.endpoint}", style="dim")
        if facts.reconnects:
            tunnel.append(f"  ({facts.reconnects} reconnects)", style="dim")
        table.add_row("redirect", facts.subject)
        table.add_row("tunnel", tunnel)
        recording = Text(facts.recording or "off")
        if recording_note:
            recording.append(f"  ({recording_note})", style="bold red")
        table.add_row("recording", recording)
        if facts.shadow is not None:
            differing = " 0 differed" not in facts.shadow
            table.add_row("shadow", Text(facts.shadow, style="bold magenta" if differing else ""))
        if facts.conversions:
            crds = ", ".join(facts.conversions)
            if facts.conversion_fallback is None:
                why = f"{crds}: no failurePolicy; while this machine cannot answer"
            else:
                why = (
                    f"{crds}: what your code cannot answer, {facts.conversion_fallback} "
                    "converts; no failurePolicy: while nothing reaches this machine"
                )
            table.add_row(
                "conversion",
                Text(
                    f"{why}, reads in other versions fail (`webhook-dev down` ends it)",
                    style="yellow",
                ),
            )
    if worker_rss is not None:
        table.add_row("worker memory", f"{worker_rss / 2**20:.0f} MiB")
    table.add_row("calls", f"{total} total, {rate:.1f}/s (last {RATE_WINDOW_SECONDS:.0f} s)")
    if policy_outcomes:
        differs = policy_outcomes.get(DIFFERS, 0)
        tally = Text(f"{policy_outcomes.get(AGREES, 0)} agree, ")
        tally.append(f"{differs} differ", style="bold magenta" if differs else "")
        tally.append(f", {policy_outcomes.get(NOT_COMPARED, 0)} not compared", style="dim")
        table.add_row("policy", tally)
    body = Group(table, *last) if last else table
    return Panel(
        body, title="webhook-dev up", subtitle="Ctrl-C restores the cluster", border_style="cyan"
    )
