"""What a test does when something it needs is not on this machine: skip, or fail in CI.

On a developer's machine a missing Go, Node or Chromium skips the tests that need it,
saying what to install; under ``CI=true`` the same test fails, so a CI run cannot pass
by silently skipping what it was meant to prove (the lab fixtures do the same).
"""

from __future__ import annotations

from typing import NoReturn

import pytest

from webhook_dev.lab.pytest_plugin import in_ci


def unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"required under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)
