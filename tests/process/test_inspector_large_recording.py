"""The inspector on a large recording (20,000 exchanges, bounded for CI): a virtualized
list (only the rows in view exist in the page), a filter narrows it on the server, a
row opens its detail read from the file by offset, and two files merge by time."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser import inspector_url, rows

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from make_recording import write_recording

EXCHANGES = 20_000


def test_a_large_recording_lists_only_visible_rows_filters_and_opens_a_row(
    inspect_recordings: Callable[..., Any], page: Page, tmp_path: Path
) -> None:
    recording = tmp_path / "big.jsonl"
    write_recording(recording, EXCHANGES)
    page.goto(inspector_url(inspect_recordings(str(recording), "--port", "0")))
    expect(page.locator("#count")).to_have_text(f"{EXCHANGES} of {EXCHANGES} calls")
    expect(rows(page).first).to_contain_text(f"-{EXCHANGES - 1}")  # the newest first
    assert rows(page).count() < 100  # virtualized: a screenful, not 20,000 rows

    page.locator(".list").evaluate("list => { list.scrollTop = list.scrollHeight / 2; }")
    expect(rows(page).first).not_to_contain_text(f"-{EXCHANGES - 1}")
    assert rows(page).count() < 100

    page.locator("#filters input[name=text]").fill("kind:Secret ns:team-a")
    expect(page.locator("#count")).not_to_have_text(f"{EXCHANGES} of {EXCHANGES} calls")
    expect(rows(page).first).to_contain_text("Secret team-a/creds-")
    rows(page).nth(2).click()
    expect(page.locator("#detail h2")).to_contain_text("Secret team-a/creds-")
    expect(page.locator("#detail")).to_contain_text("Raw AdmissionReviews")

    page.locator("#filters input[name=text]").fill("nothing-like-this")
    expect(rows(page)).to_have_count(0)
    expect(page.locator("#empty")).to_have_text("No call matches the filters.")


def test_two_recordings_merge_by_time(
    inspect_recordings: Callable[..., Any], page: Page, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    early, late = tmp_path / "early.jsonl", tmp_path / "late.jsonl"
    write_recording(early, 50, start=datetime(2025, 1, 1, tzinfo=UTC))
    write_recording(late, 50, seed=2, start=datetime(2025, 2, 1, tzinfo=UTC))
    page.goto(inspector_url(inspect_recordings(str(early), str(late), "--port", "0")))
    expect(page.locator("#count")).to_have_text("100 of 100 calls")
    expect(page.locator("#source")).to_have_text("early.jsonl, late.jsonl")
