"""The inspector page of ``up`` on the lab, in headless Chromium: a real apiserver call.

Assertions are on what a user sees on the page; Playwright's ``expect`` waits for it
(up to the generous default timeout set in ``tests/browser.py``), so nothing is timed.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser import CHROMIUM, INSPECTOR_LINE, launch_chromium, new_page, rows
from tests.lab.redirect_fixtures import ClusterView, RedirectTarget
from webhook_dev.lab import Lab

pytestmark = pytest.mark.e2e


@pytest.fixture
def workstation_page(lab: Lab, playwright: Any, tmp_path: Path) -> Iterator[Page]:
    """A page in a Chromium running in the lab's workstation namespace, where `up` runs.

    `up`'s 127.0.0.1 is the namespace's own loopback, so the browser must live there too;
    Playwright drives it over a pipe, which crosses namespaces.
    """
    wrapper = tmp_path / "chromium-in-workstation"
    wrapper.write_text(
        "#!/bin/sh\nexec " + shlex.join(lab.workstation_argv([CHROMIUM])) + ' "$@"\n'
    )
    wrapper.chmod(0o755)
    launched = launch_chromium(playwright, str(wrapper))
    try:
        yield new_page(launched)
    finally:
        launched.close()


def test_up_shows_a_real_apiserver_call_with_its_user_patch_and_diff(
    redirect_target: RedirectTarget,
    cluster_view: ClusterView,
    start_up: Any,
    workstation_page: Page,
) -> None:
    page = workstation_page
    up = start_up(redirect_target, "--inspector-port", "0")
    line = up.wait_for("inspector http://127.0.0.1:")
    match = re.search(INSPECTOR_LINE.strip("^$"), line)
    assert match is not None, line
    up.wait_for("ready: kube-apiserver")
    page.goto(match.group(1))

    cluster_view.create_pod(redirect_target.namespace, "web-0")

    row = rows(page).filter(has_text=f"Pod {redirect_target.namespace}/web-0")
    expect(row).to_contain_text("CREATE")
    expect(row).to_contain_text("3 ops")
    expect(row.locator("td.user")).not_to_be_empty()  # the apiserver's authenticated user
    expect(page.locator("table.patch")).to_contain_text("/spec/containers/-")
    expect(page.locator("table.diff td.ins", has_text='"name": "nginx-sidecar"')).to_be_visible()
    page.get_by_role("button", name="Replay").click()
    expect(page.locator(".replay-verdict")).to_contain_text("same")
