"""``up --relay``'s flags: exclusive with the other transports, and only with --relay."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.unit.commands.test_usage_errors import runner  # noqa: F401 (a fixture)
from webhook_dev.commands.main import main
from webhook_dev.errors import ExitCode

APP = ["--service", "ns/s", "--app", "hook"]
CASES = [
    (["up", "--relay", "--ssh", "master", *APP], "exactly one of --ssh DEST, --direct or --relay"),
    (["up", "--relay", "--direct", *APP], "exactly one of --ssh DEST, --direct or --relay"),
    (["up", *APP], "exactly one of --ssh DEST, --direct or --relay"),
    (["up", "--ssh", "m", "--relay-port", "8443", *APP], "are for --relay"),
    (["up", "--direct", "--relay-host-network", *APP], "are for --relay"),
    (["up", "--relay", "--address", "10.0.0.1", *APP], "--address and --allow-from are for"),
    (["up", "--relay", "--remote-port", "2", *APP], "are for --ssh"),
    (["doctor", "--relay", "--direct", "--service", "ns/s"], "exactly one of --ssh DEST"),
]


@pytest.mark.parametrize(("argv", "message"), CASES)
def test_relay_flags_are_refused_where_they_cannot_apply(
    runner: CliRunner,  # noqa: F811
    argv: list[str],
    message: str,
) -> None:
    result = runner.invoke(main, argv)
    assert result.exit_code == ExitCode.USAGE, (result.output, result.exception)
    assert message in result.stderr
