"""Project-wide test policy: under CI=true an end-to-end test may not pass by skipping.

The lab fixtures already fail instead of skipping under CI; this hook also catches skips
from anywhere else (an importorskip, a skip marker) on tests marked ``e2e``.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from webhook_dev.lab.pytest_plugin import in_ci


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and item.get_closest_marker("e2e"):
        report.outcome = "failed"
        report.longrepr = f"e2e test skipped under CI=true: {report.longrepr}"
