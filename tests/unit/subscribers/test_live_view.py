"""The live panel of `up` shows what a person needs at a glance."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

from rich.console import Console
from rich.text import Text

from webhook_dev.reviews.exchange import Exchange
from webhook_dev.subscribers.live_view import LiveView, SessionFacts, render_panel

FACTS = SessionFacts(
    subject="hooks/sidecar",
    tunnel="up",
    endpoint="10.0.0.5:40001 → 127.0.0.1:8443",
    recording="/tmp/rec.jsonl",
    reconnects=2,
)


def _text(renderable: object, width: int = 100) -> str:
    console = Console(file=StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_panel_shows_redirect_tunnel_recording_and_call_rate() -> None:
    text = _text(render_panel(FACTS, 2.5, 40, [Text("12:00:00.000  Pod a/b  CREATE  allowed")]))
    assert "hooks/sidecar" in text
    assert "up  10.0.0.5:40001 → 127.0.0.1:8443  (2 reconnects)" in text
    assert "/tmp/rec.jsonl" in text
    assert "40 total, 2.5/s" in text
    assert "Pod a/b  CREATE  allowed" in text


def test_panel_before_the_tunnel_exists_says_starting() -> None:
    assert "starting" in _text(render_panel(None, 0.0, 0, []))


def test_each_call_prints_its_line_and_the_rate_counts_the_last_ten_seconds() -> None:
    now = [0.0]
    output = StringIO()
    view = LiveView(Console(file=output, width=120), lambda: None, clock=lambda: now[0])
    for moment in (0.0, 5.0, 11.0, 12.0):
        now[0] = moment
        view.on_exchange(
            Exchange(
                id=str(moment),
                started=datetime.now(UTC),
                path="/mutate",
                http_status=400,
                error="not JSON",
            )
        )
    now[0] = 14.0
    assert view.calls_per_second() == 0.3
    assert view.total == 4 and output.getvalue().count("not JSON") == 4


def test_panel_names_the_crds_whose_conversion_depends_on_this_machine() -> None:
    facts = SessionFacts(**{**FACTS.__dict__, "conversions": ("websites.samples.webhook-dev.io",)})

    text = " ".join(_text(render_panel(facts, 0.0, 0, [])).split())

    assert "conversion websites.samples.webhook-dev.io: no failurePolicy" in text
    assert "`webhook-dev down` ends it" in text
    assert "conversion" not in _text(render_panel(FACTS, 0.0, 0, []))


def test_panel_names_the_pod_converting_what_the_local_code_cannot() -> None:
    facts = SessionFacts(
        **{
            **FACTS.__dict__,
            "conversions": ("websites.samples.webhook-dev.io",),
            "conversion_fallback": "Pod website/website-6d5f:8443",
        }
    )

    panel = _text(render_panel(facts, 0.0, 0, []), width=400)  # one line a row
    [row] = [line for line in panel.splitlines() if "conversion" in line]

    assert "what your code cannot answer, Pod website/website-6d5f:8443 converts" in row
    assert "while nothing reaches this machine, reads in other versions fail" in row


def test_the_panel_keeps_the_shadow_count_under_way() -> None:
    facts = SessionFacts(**{**FACTS.__dict__, "shadow": "12 compared, 2 differed (1 noisy)"})
    assert "shadow" in _text(render_panel(facts, 1.0, 12, []))
    assert "12 compared, 2 differed (1 noisy)" in _text(render_panel(facts, 1.0, 12, []))
    assert "shadow" not in _text(render_panel(FACTS, 1.0, 12, []))
