"""Fixtures for the inspector's browser tests: Debian's headless Chromium driven by Playwright.

Playwright's own browser download cannot work here (no internet but package registries),
so it launches the ``chromium`` Debian package that ``dev/setup.sh`` installs. Without
it the tests skip on a developer's machine and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, STARTUP_TIMEOUT, WEBHOOK_DEV, Served
from webhook_dev.lab.pytest_plugin import in_ci

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


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"browser tests cannot run under CI=true: {reason} (run dev/setup.sh)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """Playwright's driver, for a test module (it runs its own event loop in this thread)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed")
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is missing: apt-get install chromium")
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


def inspector_url(served: Served) -> str:
    """The URL ``serve`` printed for the inspector, token included."""
    match = re.match(INSPECTOR_LINE, served.wait_for(INSPECTOR_LINE))
    assert match is not None
    return match.group(1)


class Inspecting:
    """A running ``webhook-dev inspect FILE...``: its output and the URL it printed."""

    def __init__(self, args: list[str], state: Path) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [*WEBHOOK_DEV, "inspect", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "WEBHOOK_DEV_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"},
        )
        self._url: str | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            match = re.match(INSPECTOR_LINE, line.strip())
            if match:
                self._url = match.group(1)
                self._ready.set()
        self._ready.set()

    @property
    def url(self) -> str:
        self._ready.wait(STARTUP_TIMEOUT)
        assert self._url is not None, "\n".join(self.lines)
        return self._url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def inspect_recordings(state_dir: Path) -> Iterator[Any]:
    """Start ``webhook-dev inspect ARGS...``; stopped after the test."""
    started: list[Inspecting] = []

    def start(*args: str) -> Inspecting:
        inspecting = Inspecting(list(args), state_dir)
        started.append(inspecting)
        return inspecting

    yield start
    for inspecting in started:
        inspecting.stop()
