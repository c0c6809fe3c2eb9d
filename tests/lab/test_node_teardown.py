"""`lab down` leaves nothing of the node: no containerd state, mounts, cgroups, veths or
processes — after `kill -9` of `lab up` at any point, and after the node itself crashed
with Pods running.

Runs a second lab with a node (own prefix, subnet and directory) beside the session's,
through the real CLI, and checks the machine from outside, not with the lab's own code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.lab.node_helpers import nginx_pod, wait_running
from webhook_dev.lab import Lab, preflight

pytestmark = pytest.mark.e2e

PREFIX = "wdlabt"
ENV = {
    **os.environ,
    "WEBHOOK_DEV_LAB_PREFIX": PREFIX,
    "WEBHOOK_DEV_LAB_SUBNET": "10.237.4.0/24",
    "WEBHOOK_DEV_LAB_DIR": "/run/webhook-dev-lab-node-teardown-test",
}
LAB_DIR = Path(ENV["WEBHOOK_DEV_LAB_DIR"])
CGROUP = f"{PREFIX}-node"


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook_dev", "lab", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def leftovers() -> list[str]:
    """Everything of the second lab still on the machine, found independently."""
    found = []
    netns = json.loads(
        subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout or "[]"
    )
    found += [f"netns {n['name']}" for n in netns if n["name"].startswith(f"{PREFIX}-")]
    links = json.loads(
        subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout or "[]"
    )
    found += [f"link {n['ifname']}" for n in links if n["ifname"].startswith(f"{PREFIX}-")]
    found += [str(p) for p in Path("/etc/netns").glob(f"{PREFIX}-*")]
    if LAB_DIR.exists():
        found.append(str(LAB_DIR))
    found += [
        f"mount {line.split()[4]}"
        for line in _read(Path("/proc/self/mountinfo")).splitlines()
        if str(LAB_DIR) in line
    ]
    found += [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{CGROUP}")]
    for proc in Path("/proc").glob("[0-9]*"):
        cmdline = _read(proc / "cmdline")
        if str(LAB_DIR) in cmdline or f"/{CGROUP}/" in _read(proc / "cgroup"):
            found.append(f"process {proc.name} {cmdline[:80]!r}")
    found += [str(p) for p in Path("/var/lib/cni/results").glob(f"{PREFIX}-pods-*")]
    logs = Path("/var/log/containers")
    if logs.is_dir():
        found += [str(p) for p in logs.iterdir() if str(LAB_DIR) in os.path.realpath(p)]
    return found


def machine_files() -> set[str]:
    """Paths the node's software writes to outside the lab dir when it is misconfigured."""
    paths = ("/run/containerd", "/var/lib/containerd", "/var/lib/kubelet", "/etc/cni", "/opt/cni")
    return {str(p) for path in paths for p in [Path(path), *Path(path).rglob("*")] if p.exists()}


@pytest.fixture
def second_lab() -> Iterator[None]:
    reason = preflight()
    if reason:
        pytest.skip(reason)
    cli("down")
    yield
    cli("down")  # whatever the test did, leave nothing behind


def start_up() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "webhook_dev", "lab", "up", "--no-build"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def recorded_pids() -> dict[str, int]:
    try:
        pids: dict[str, int] = json.loads((LAB_DIR / "state.json").read_text())["pids"]
        return pids
    except (OSError, ValueError, KeyError):
        return {}


def assert_down_leaves_nothing(files_before: set[str]) -> None:
    assert leftovers(), "the lab should have made something to remove"
    first = cli("down")
    assert first.returncode == 0, first.stderr
    assert leftovers() == []
    assert machine_files() - files_before == set()
    second = cli("down")
    assert second.returncode == 0
    assert "nothing to remove" in second.stdout


@pytest.mark.usefixtures("second_lab")
@pytest.mark.parametrize(
    "component", ["containerd", "kube-scheduler", "kubelet"], ids=lambda c: f"killed-after-{c}"
)
def test_down_leaves_nothing_after_kill_9_of_up_during_node_start(component: str) -> None:
    files_before = machine_files()
    up = start_up()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and component not in recorded_pids():
        assert up.poll() is None, up.stderr.read() if up.stderr else ""
        time.sleep(0.01)
    assert up.poll() is None, "lab up finished before we could kill it mid-start"
    up.send_signal(signal.SIGKILL)
    up.wait()

    assert_down_leaves_nothing(files_before)


@pytest.mark.usefixtures("second_lab")
def test_down_leaves_nothing_after_the_node_crashed_with_pods_running() -> None:
    files_before = machine_files()
    up = start_up()
    _, stderr = up.communicate(timeout=180)
    assert up.returncode == 0, stderr
    lab = Lab.attach(LAB_DIR)
    core = client.CoreV1Api(lab.api_client())
    core.create_namespaced_pod("default", nginx_pod("web"))
    wait_running(core, "default", "web")
    # The node dies hard: containerd and the kubelet, not their shims or the Pods.
    for component in ("kubelet", "containerd"):
        os.kill(lab.state.pids[component], signal.SIGKILL)

    assert_down_leaves_nothing(files_before)
