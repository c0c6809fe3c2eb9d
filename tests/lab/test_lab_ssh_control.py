"""The knobs a tunnel test needs: cut SSH connections, or black-hole them and restore."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from webhook_dev.lab import Lab

pytestmark = pytest.mark.e2e


def ssh_argv(lab: Lab, *remote: str) -> list[str]:
    return lab.workstation_argv(
        [
            "ssh",
            "-o",
            "ServerAliveInterval=1",
            "-o",
            "ServerAliveCountMax=2",
            lab.ssh_destination,
            *remote,
        ]
    )


def test_kill_ssh_sessions_ends_an_open_connection(
    lab: Lab, background: Callable[..., Any]
) -> None:
    session = background(ssh_argv(lab, "echo", "up;", "sleep", "60"), ready_line="up")
    assert lab.ssh_session_pids()
    assert lab.kill_ssh_sessions() >= 1
    assert session.wait(timeout=10) != 0
    assert lab.ssh_session_pids() == []


def test_blocked_ssh_stalls_connections_until_unblocked(lab: Lab) -> None:
    with lab.ssh_blocked():
        attempt = subprocess.run(ssh_argv(lab, "true"), capture_output=True, text=True, timeout=30)
        assert attempt.returncode == 255
        assert "timed out" in attempt.stderr
    after = subprocess.run(
        ssh_argv(lab, "echo", "back"), capture_output=True, text=True, timeout=30
    )
    assert after.stdout.strip() == "back", after.stderr
