"""Bad flags: exit code 2 and one line naming the problem, before any cluster or network.

Through the real command group (``webhook_dev.commands.main:main``) with click's
CliRunner, in-process. Each case fails before it could touch a cluster, an SSH server
or a port; the environment points nowhere, so one that did would fail differently.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from webhook_dev.commands.main import main
from webhook_dev.errors import ExitCode

RECORDING = "rec.jsonl"

CASES = [
    (
        ["serve", "hook", "--upstream", "http://127.0.0.1:1"],
        "give either APP (an aiohttp app) or --upstream URL, not both",
    ),
    (["serve"], "give APP (an aiohttp app, module[:attr]) or --upstream URL"),
    (["serve", "--run", "sleep 1"], "give APP"),
    (
        ["serve", "hook", "--run", "sleep 1"],
        "--run needs --upstream URL: the address CMD listens at",
    ),
    (
        ["serve", "--upstream", "http://127.0.0.1:1", "--build", "make"],
        "--build needs --run: webhook-dev builds what it runs",
    ),
    (["serve", "hook", "--record", "x.jsonl", "--no-record"], "--record and --no-record exclude"),
    (["serve", "hook", "--watch", "nowhere"], "--watch nowhere: not a directory"),
    (
        ["up", "--ssh", "master", "--app", "hook"],
        "say what to redirect: --webhook NAME[/ENTRY], --service NS/NAME or --crd NAME",
    ),
    (
        ["up", "--ssh", "master", "--app", "hook", "--webhook", "w", "--service", "ns/s"],
        "say what to redirect: --webhook or --service, not both",
    ),
    (
        ["up", "--ssh", "master", "--app", "hook", "--service", "webhooks"],
        "--service wants NAMESPACE/NAME, not 'webhooks'",
    ),
    (
        ["up", "--ssh", "master", "--service", "ns/s"],
        "give APP (an aiohttp app, module[:attr]) or --upstream URL",
    ),
    (
        ["up", "--ssh", "master", "--service", "ns/s", "--app", "hook", "--upstream", "http://x"],
        "give either APP (an aiohttp app) or --upstream URL, not both",
    ),
    (
        ["doctor", "--ssh", "master"],
        "say what to check: --webhook NAME[/ENTRY], --service NS/NAME or --crd NAME",
    ),
    (["replay", RECORDING], "give exactly one of --app APP or --url URL"),
    (
        ["replay", RECORDING, "--app", "hook", "--url", "https://127.0.0.1:1"],
        "give exactly one of --app APP or --url URL",
    ),
]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner in an empty directory whose kubeconfig, state and HOME lead nowhere."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / RECORDING).write_text("")
    return CliRunner(
        env={
            "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
            "WEBHOOK_DEV_STATE_DIR": str(tmp_path / "state"),
            "HOME": str(tmp_path),
        }
    )


@pytest.mark.parametrize(
    ("argv", "message"), CASES, ids=["-".join(argv[:1] + argv[1:][:3]) for argv, _ in CASES]
)
def test_a_usage_error_exits_2_with_one_line_naming_the_problem(
    runner: CliRunner, argv: list[str], message: str
) -> None:
    result = runner.invoke(main, argv)
    assert result.exit_code == ExitCode.USAGE == 2, (result.output, result.exception)
    assert message in result.stderr, result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.output


def test_a_usage_error_changes_nothing_on_disk(runner: CliRunner, tmp_path: Path) -> None:
    """No local CA, no state directory: the flags were refused before anything ran."""
    result = runner.invoke(main, ["serve", "hook", "--upstream", "http://127.0.0.1:1"])
    assert result.exit_code == 2
    assert not (tmp_path / "state").exists()
