"""Fixtures for the inspector's browser tests: Debian's headless Chromium driven by Playwright.

Playwright's own browser download cannot work here (no internet but package registries),
so it launches the ``chromium`` Debian package that ``dev/setup.sh`` installs. Without
it the tests skip on a developer's machine and fail under ``CI=true``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import REPO, STARTUP_TIMEOUT, WEBHOOK_DEV, RunningProcess, stopped_at_exit
from tests.missing import unavailable

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSPECTOR_LINE = r"^inspector (http://127\.0\.0\.1:\d+/\?token=[\w-]+)$"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """Playwright's driver, for a test module (it runs its own event loop in this thread)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright Python package is not installed (run dev/setup.sh)")
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing: apt-get install chromium (or run dev/setup.sh)")
    with sync_playwright() as driver:
        yield driver


def launch_chromium(playwright: Any, executable: str = CHROMIUM) -> Any:
    """Headless Chromium from ``executable`` (Debian's, or a wrapper that runs it)."""
    return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    """One headless Chromium for a test module (each test gets a fresh context)."""
    launched = launch_chromium(playwright)
    try:
        yield launched
    finally:
        launched.close()


def new_page(browser: Any) -> Any:
    """A page in a fresh context (no cookies from another test), 1400x900."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(STARTUP_TIMEOUT * 1000)  # a busy 2-core machine; never a race
    return context.new_page()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a fresh context (no cookies from another test), 1400x900."""
    page = new_page(browser)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        page.context.close()
    assert not errors, f"the page raised: {errors}"


def rows(page: Any) -> Any:
    """The rows of the inspector's exchange table."""
    return page.locator("#exchanges tbody tr")


def inspector_url(running: RunningProcess) -> str:
    """The URL ``serve`` or ``inspect`` printed for the inspector, token included."""
    match = re.match(INSPECTOR_LINE, running.wait_for(INSPECTOR_LINE))
    assert match is not None
    return match.group(1)


def inspecting(args: list[str], state: Path) -> RunningProcess:
    """``webhook-dev inspect FILE...`` started (wait for its URL with :func:`inspector_url`)."""
    return RunningProcess(
        [*WEBHOOK_DEV, "inspect", *args],
        env={"WEBHOOK_DEV_STATE_DIR": str(state)},
        cwd=REPO,
        name="inspect",
    )


@pytest.fixture
def inspect_recordings(state_dir: Path) -> Iterator[Any]:
    """Start ``webhook-dev inspect ARGS...``; stopped after the test."""
    with stopped_at_exit() as processes:

        def start(*args: str) -> RunningProcess:
            return processes.add(inspecting(list(args), state_dir))

        yield start
