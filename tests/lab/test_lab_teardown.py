"""`lab down` removes everything `lab up` made — also after `kill -9` of `lab up`.

Runs a second, independent lab (own prefix, subnet and directory) beside the session's,
through the real CLI in subprocesses, so it exercises exactly what a user does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.polling import wait_until
from webhook_dev.lab import Lab, preflight

pytestmark = pytest.mark.e2e

PREFIX = "wdlabk"
ENV = {
    **os.environ,
    "WEBHOOK_DEV_LAB_PREFIX": PREFIX,
    "WEBHOOK_DEV_LAB_SUBNET": "10.237.1.0/24",
    "WEBHOOK_DEV_LAB_DIR": "/run/webhook-dev-lab-teardown-test",
}
LAB_DIR = Path(ENV["WEBHOOK_DEV_LAB_DIR"])


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook_dev", "lab", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def root_iptables() -> str:
    """The root namespace's rules, without counters (which change on their own)."""
    dump = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return "\n".join(line.split(" [")[0] for line in dump.splitlines() if not line.startswith("#"))


def leftovers() -> list[str]:
    found = []
    netns = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True)
    found += [
        n["name"] for n in json.loads(netns.stdout or "[]") if n["name"].startswith(f"{PREFIX}-")
    ]
    links = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True)
    found += [
        n["ifname"]
        for n in json.loads(links.stdout or "[]")
        if n["ifname"].startswith(f"{PREFIX}-")
    ]
    found += [str(p) for p in Path("/etc/netns").glob(f"{PREFIX}-*")]
    if LAB_DIR.exists():
        found.append(str(LAB_DIR))
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(LAB_DIR).encode() in cmdline.read_bytes():
                found.append(f"process {cmdline.parent.name}")
        except OSError:
            pass
    return found


@pytest.fixture
def second_lab_cleanup() -> object:
    if preflight():
        pytest.skip(preflight() or "")
    yield
    cli("down")  # whatever the test did, leave nothing behind


def _apiserver_started() -> bool:
    try:
        pids = json.loads((LAB_DIR / "state.json").read_text())["pids"]
    except (OSError, ValueError):
        return False
    return "kube-apiserver" in pids


@pytest.mark.usefixtures("second_lab_cleanup")
@pytest.mark.parametrize(
    "kill_when", ["during-start", "after-ready"], ids=["killed-during-start", "after-normal-start"]
)
def test_down_removes_everything_even_after_kill_9_of_up(kill_when: str) -> None:
    rules_before = root_iptables()
    up = subprocess.Popen(
        [sys.executable, "-m", "webhook_dev", "lab", "up", "--no-build"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if kill_when == "during-start":
        wait_until(
            _apiserver_started, timeout=60, interval=0.02, what="lab up started kube-apiserver"
        )
    else:
        wait_until(lambda: up.poll() is not None, timeout=60, interval=0.02, what="lab up ended")
    if kill_when == "during-start":
        assert up.poll() is None, "lab up finished before we could kill it mid-start"
        up.send_signal(signal.SIGKILL)
    else:
        assert up.returncode == 0, up.stderr.read() if up.stderr else ""
        # The lab is usable from another process before we take it down.
        assert Lab.attach(LAB_DIR).healthy()
    up.wait()
    assert leftovers(), "the lab should have made something to remove"

    first = cli("down")
    assert first.returncode == 0, first.stderr
    assert leftovers() == []
    assert root_iptables() == rules_before

    second = cli("down")
    assert second.returncode == 0
    assert "nothing to remove" in second.stdout
