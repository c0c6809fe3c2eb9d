"""docs/operators.md's local commands, run exactly as the page shows them."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

from tests.conftest import REPO, Served, run_webhook_dev
from tests.reviews import conversion_review, request_review, website

PAGE = REPO / "docs" / "operators.md"
CONVERT = "/convert?timeout=30s"


def page_command(starting: str) -> list[str]:
    """The ``$ webhook-dev ...`` line of the page that starts with ``starting``."""
    commands = re.findall(r"^\$ (webhook-dev .+)$", PAGE.read_text(), flags=re.MULTILINE)
    matching = [command for command in commands if command.startswith(starting)]
    assert len(matching) == 1, (starting, commands)
    return shlex.split(matching[0])


def test_the_operators_page_serve_and_replay_commands_work_as_written(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    serve_argv = page_command("webhook-dev serve")
    assert serve_argv[:2] == ["webhook-dev", "serve"]
    served = serve(*serve_argv[2:], cwd=tmp_path)
    assert served.port == 8443
    served.review(conversion_review(website("a"), website("b"), uid="to-v2"), path=CONVERT)
    v2 = website("c", "v2", address="example.org:8443", tls=True)
    served.review(
        conversion_review(v2, desired="samples.webhook-dev.io/v1", uid="to-v1"), path=CONVERT
    )
    served.review(
        request_review(
            website("d", host="example.net"), kind="Website", namespace="websites", uid="default-d"
        ),
        path="/mutate?timeout=10s",
    )
    served.wait_for(r"Website websites/d  CREATE  allowed  1 op")
    served.stop()

    replay_argv = page_command("webhook-dev replay")
    result = run_webhook_dev(*replay_argv[1:], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    page = PAGE.read_text()
    for line in result.stdout.splitlines():
        assert line in page, f"replay printed {line!r}, which the page does not show"
