"""``up --direct`` on the lab: the master's apiserver dials the workstation itself.

The lab is made routable for these tests (``Lab.set_routable``: the one NAT-like rule in
the workstation namespace is lifted) and put back afterwards; the last test keeps it
NAT-like and checks that ``--direct`` fails at the probe and restores.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.direct_fixtures import FAST_LEASE
from tests.harness import REPO, RunningProcess, sample_project
from tests.lab.redirect_fixtures import ClusterView, RedirectTarget, container_names
from webhook_dev.lab import Lab

pytestmark = pytest.mark.e2e


def webhook_dev(lab: Lab, state_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """webhook-dev from the root namespace: another shell, with the host's kubeconfig."""
    env = {
        "WEBHOOK_DEV_STATE_DIR": str(state_dir),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(Path.home()),
        "KUBECONFIG": str(lab.host_kubeconfig),
    }
    command = [sys.executable, "-m", "webhook_dev", *argv]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


def listening_address(up: RunningProcess) -> tuple[str, int]:
    line = up.wait_for("direct up:")
    match = re.search(r"direct up: ([\d.]+):(\d+) →", line)
    assert match, line
    return match.group(1), int(match.group(2))


CONNECT_AND_READ = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
    s.sendall(b"\\x16\\x03\\x01\\x00\\x05hello")  # the start of a TLS record
    try:
        print("read", len(s.recv(100)))
    except ConnectionResetError:
        print("reset")
"""


def connect_from_workstation(lab: Lab, address: tuple[str, int]) -> str:
    """Connect from the workstation's own address: a peer outside the allow-list."""
    argv = lab.workstation_argv([sys.executable, "-c", CONNECT_AND_READ, *map(str, address)])
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_up_direct_puts_the_apiserver_call_through_and_refuses_everyone_else(
    routable_lab: Lab,
    state_dir: Path,
    cluster_view: ClusterView,
    redirect_target: RedirectTarget,
    start_direct: Any,
) -> None:
    lab = routable_lab
    before = cluster_view.snapshot(redirect_target)
    up: RunningProcess = start_direct(redirect_target, env=FAST_LEASE)
    up.wait_for(re.escape(f"accepting connections only from {lab.master_ip} (InternalIP of"))
    address = listening_address(up)
    assert address[0] == lab.workstation_ip  # the route toward the apiserver's host
    up.wait_for("ready: kube-apiserver → sidecar-injector")

    pod = cluster_view.create_pod(redirect_target.namespace, "direct-0")
    assert container_names(pod) == ["app", "nginx-sidecar"]

    # A connection from an address outside the allow-list is closed before a byte is read.
    assert connect_from_workstation(lab, address) in ("read 0", "reset")
    pod = cluster_view.create_pod(redirect_target.namespace, "direct-1", dry_run=True)
    assert container_names(pod) == ["app", "nginx-sidecar"]  # the apiserver's still succeed
    deadline = time.monotonic() + 20
    while True:
        shown = webhook_dev(lab, state_dir, "status").stdout
        if "1 connections refused" in shown:
            break
        assert time.monotonic() < deadline, shown
        time.sleep(0.5)
    assert f"direct: {address[0]}:{address[1]}, only from {lab.master_ip}" in shown

    assert up.stop(signal.SIGTERM) == 0, up.output
    assert cluster_view.snapshot(redirect_target) == before


def test_allow_from_widens_the_allow_list(
    routable_lab: Lab, redirect_target: RedirectTarget, start_direct: Any
) -> None:
    lab = routable_lab
    up: RunningProcess = start_direct(redirect_target, "--allow-from", f"{lab.workstation_ip}/32")
    up.wait_for("ready: kube-apiserver")
    # Now the workstation's own address may connect: it reaches the TLS proxy, which
    # answers a broken TLS record with an alert or by closing.
    assert connect_from_workstation(lab, listening_address(up)) != ""
    assert "refused a connection" not in up.output


def test_a_code_edit_under_up_direct_reaches_the_apiserver_without_a_missed_call(
    tmp_path: Path,
    routable_lab: Lab,
    cluster_view: ClusterView,
    redirect_target: RedirectTarget,
    start_direct: Any,
) -> None:
    project = sample_project(tmp_path)
    source = project / "sample_webhook" / "sidecar_injector.py"
    up: RunningProcess = start_direct(redirect_target, cwd=project)
    up.wait_for("ready: kube-apiserver")

    injected = []
    for index in range(30):
        if index == 5:
            source.write_text(source.read_text().replace('"nginx-sidecar"', '"edited-sidecar"'))
        pod = cluster_view.create_pod(redirect_target.namespace, f"edit-{index}", dry_run=True)
        injected.append(container_names(pod)[-1])
        time.sleep(0.1)
    assert all(name in ("nginx-sidecar", "edited-sidecar") for name in injected), injected
    assert injected[0] == "nginx-sidecar" and injected[-1] == "edited-sidecar", injected


def test_down_from_the_root_namespace_restores_exactly_after_kill_9_of_up_direct(
    routable_lab: Lab,
    state_dir: Path,
    cluster_view: ClusterView,
    redirect_target: RedirectTarget,
    start_direct: Any,
) -> None:
    before = cluster_view.snapshot(redirect_target)
    up: RunningProcess = start_direct(redirect_target, env={"WEBHOOK_DEV_FAULT_AFTER": "ready"})
    assert up.wait(120) == -signal.SIGKILL, up.output
    assert "ready: kube-apiserver" in up.output

    result = webhook_dev(routable_lab, state_dir, "down", "--service", redirect_target.subject)
    assert result.returncode == 0, result.stdout + result.stderr
    assert cluster_view.snapshot(redirect_target) == before


def test_up_direct_fails_at_the_probe_and_restores_when_the_cluster_cannot_connect(
    nat_lab: Lab,
    cluster_view: ClusterView,
    redirect_target: RedirectTarget,
    start_direct: Any,
) -> None:
    before = cluster_view.snapshot(redirect_target)
    up: RunningProcess = start_direct(redirect_target)
    assert up.wait(120) == 1, up.output
    assert "the cluster cannot connect to this machine; the cluster was restored" in up.output
    assert "firewall" in up.output and "--address" in up.output and "--ssh" in up.output
    assert "ready: kube-apiserver" not in up.output
    assert cluster_view.snapshot(redirect_target) == before
