"""``up`` and ``down`` against the lab's real kube-apiserver, kube-proxy and OpenSSH sshd.

Each test redirects its own Service and webhook in its own namespace; ``up`` runs in the
workstation namespace (the master cannot connect to it: only the tunnel crosses).
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import RunningProcess, sample_project
from tests.lab.redirect_fixtures import (
    REPO,
    ClusterView,
    RedirectTarget,
    container_names,
)
from webhook_dev.kube.cluster import ClusterError
from webhook_dev.lab import Lab
from webhook_dev.tls import certs

pytestmark = pytest.mark.e2e

SIDECAR_APP = "sample_webhook.sidecar_injector"

FAULT_POINTS = [
    "lease",
    "journal-local",
    "journal",
    "MutatingWebhookConfiguration/{config}",
    "Service/{service}",
    "Endpoints/{service}",
    "EndpointSlice/{service}-webhook-dev",
    "ready",
]


def _webhook_dev(
    lab: Lab, state_dir: Path, *argv: str, workstation: bool = False, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "webhook_dev", *argv]
    env = {
        "WEBHOOK_DEV_STATE_DIR": str(state_dir),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(Path.home()),
    }
    if workstation:
        command = lab.workstation_argv(command)
    else:
        env["KUBECONFIG"] = str(kubeconfig or lab.host_kubeconfig)
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_up_puts_the_apiserver_call_through_the_tunnel_and_sigterm_restores_exactly(
    cluster_view: ClusterView, redirect_target: RedirectTarget, start_up: object
) -> None:
    before = cluster_view.snapshot(redirect_target)
    up = start_up(redirect_target)  # type: ignore[operator]
    ready = up.wait_for("ready: kube-apiserver")
    assert f"sidecar-injector.{redirect_target.namespace}.svc" in ready

    pod = cluster_view.create_pod(redirect_target.namespace, "web-0")
    assert container_names(pod) == ["app", "nginx-sidecar"]
    assert pod["metadata"]["annotations"]["sidecar-injector/injected"] == "true"
    up.wait_for(f"Pod {redirect_target.namespace}/web-0  CREATE  allowed")

    during = cluster_view.snapshot(redirect_target)
    assert during["our_slices"] == ["sidecar-injector-webhook-dev"]
    assert during["config"]["webhooks"][0]["failurePolicy"] == "Ignore"
    assert "selector" not in during["service"]["spec"]

    assert up.stop(signal.SIGTERM) == 0, up.output
    assert "0 conflicts" in up.output
    assert cluster_view.snapshot(redirect_target) == before


@pytest.mark.parametrize("fault", FAULT_POINTS)
def test_down_from_another_shell_restores_exactly_after_kill_9_of_up(
    fault: str,
    lab: Lab,
    state_dir: Path,
    cluster_view: ClusterView,
    redirect_target: RedirectTarget,
    start_up: object,
) -> None:
    before = cluster_view.snapshot(redirect_target)
    step = fault.format(config=redirect_target.config, service=redirect_target.service)
    up = start_up(redirect_target, env={"WEBHOOK_DEV_FAULT_AFTER": step})  # type: ignore[operator]
    assert up.wait(120) == -signal.SIGKILL, up.output

    # Another shell, on another "machine": the root namespace with its own kubeconfig.
    result = _webhook_dev(lab, state_dir, "down", "--service", redirect_target.subject)
    assert result.returncode == 0, result.stdout + result.stderr
    assert cluster_view.snapshot(redirect_target) == before

    again = _webhook_dev(lab, state_dir, "down", "--service", redirect_target.subject)
    assert again.returncode == 0 and "nothing to restore" in again.stderr


def test_second_up_is_refused_naming_the_holder(
    lab: Lab,
    state_dir: Path,
    cluster_view: ClusterView,
    redirect_target: RedirectTarget,
    start_up: object,
) -> None:
    first = start_up(redirect_target)  # type: ignore[operator]
    first.wait_for("ready: kube-apiserver")
    during = cluster_view.snapshot(redirect_target)
    second = start_up(redirect_target)  # type: ignore[operator]
    assert second.wait(90) == 1
    assert "already redirected by" in second.output and "(pid " in second.output
    assert cluster_view.snapshot(redirect_target) == during

    status = _webhook_dev(lab, state_dir, "status", "--json")
    [row] = [
        r for r in json.loads(status.stdout)["redirects"] if r["subject"] == redirect_target.subject
    ]
    assert row["lease"]["stale"] is False
    assert row["holder"].endswith(f"(pid {first.process.pid})")


def test_gateway_ports_no_is_refused_before_any_change(
    lab: Lab,
    cluster_view: ClusterView,
    redirect_target: RedirectTarget,
    start_up: object,
) -> None:
    before = cluster_view.snapshot(redirect_target)
    lab.set_gateway_ports("no")
    try:
        up = start_up(redirect_target)  # type: ignore[operator]
        assert up.wait(90) == 1, up.output
    finally:
        lab.set_gateway_ports("clientspecified")
    assert "GatewayPorts" in up.output and "loopback" in up.output
    assert cluster_view.snapshot(redirect_target) == before


def test_unknown_host_key_is_refused_before_any_change(
    tmp_path: Path,
    cluster_view: ClusterView,
    redirect_target: RedirectTarget,
    start_up: object,
) -> None:
    before = cluster_view.snapshot(redirect_target)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    # The user's config is read first and its values win: no known host at all.
    (home / ".ssh" / "config").write_text(
        "Host *\n  UserKnownHostsFile /dev/null\n  GlobalKnownHostsFile /dev/null\n"
    )
    up = start_up(redirect_target, env={"HOME": str(home)})  # type: ignore[operator]
    assert up.wait(90) == 1, up.output
    assert "not in known_hosts" in up.output
    assert cluster_view.snapshot(redirect_target) == before


def test_tunnel_cut_reconnects_and_pods_created_meanwhile_are_still_admitted(
    lab: Lab,
    cluster_view: ClusterView,
    redirect_target: RedirectTarget,
    start_up: object,
) -> None:
    up = start_up(redirect_target)  # type: ignore[operator]
    up.wait_for("ready: kube-apiserver")
    with lab.ssh_blocked():
        lab.kill_ssh_sessions()
        up.wait_for("tunnel reconnecting")
        # failurePolicy Ignore during the session: the laptop is away, the cluster is not.
        pod = cluster_view.create_pod(redirect_target.namespace, "during-outage")
        assert container_names(pod) == ["app"]
        mark = up.mark()
    up.wait_for("tunnel up", after=mark)
    pod = cluster_view.create_pod(redirect_target.namespace, "after-outage")
    assert container_names(pod) == ["app", "nginx-sidecar"]


def _round_trip_restores_exactly(
    view: ClusterView, target: RedirectTarget, start_up: Any, app: str = SIDECAR_APP
) -> RunningProcess:
    """Start up, wait for the probe's proof, and hand back the process; caller stops it."""
    up: RunningProcess = start_up(target, app=app)
    up.wait_for("ready: kube-apiserver")
    return up


@pytest.mark.redirect_target(url="https://sidecar.example.test:9443/mutate")
def test_a_url_webhook_is_pointed_at_the_tunnel_and_back(
    cluster_view: ClusterView, redirect_target: RedirectTarget, start_up: object
) -> None:
    before = cluster_view.snapshot(redirect_target)
    up = _round_trip_restores_exactly(cluster_view, redirect_target, start_up)
    url = cluster_view.snapshot(redirect_target)["config"]["webhooks"][0]["clientConfig"]["url"]
    assert url.startswith("https://") and url.endswith("/mutate") and "example.test" not in url
    pod = cluster_view.create_pod(redirect_target.namespace, "via-url")
    assert container_names(pod) == ["app", "nginx-sidecar"]
    assert up.stop(signal.SIGTERM) == 0, up.output
    assert cluster_view.snapshot(redirect_target) == before


@pytest.mark.redirect_target(kind="validating")
def test_a_validating_webhook_denies_through_the_tunnel_with_its_message(
    cluster_view: ClusterView, redirect_target: RedirectTarget, start_up: object
) -> None:
    before = cluster_view.snapshot(redirect_target)
    up = _round_trip_restores_exactly(
        cluster_view, redirect_target, start_up, app="sample_webhook.require_limits"
    )
    with pytest.raises(ClusterError, match=r"has no resources\.limits\.cpu"):
        cluster_view.create_pod(redirect_target.namespace, "no-limits")
    up.wait_for("denied")
    assert up.stop(signal.SIGTERM) == 0, up.output
    assert cluster_view.snapshot(redirect_target) == before


@pytest.fixture
def endpoint_resolver(lab: Lab) -> Iterator[None]:
    """kube-apiserver with --enable-aggregator-routing: it dials endpoints, not the ClusterIP."""
    lab.set_aggregator_routing(True)
    try:
        yield
    finally:
        lab.set_aggregator_routing(False)


def test_the_redirect_works_when_the_apiserver_resolves_endpoints_itself(
    endpoint_resolver: None,
    cluster_view: ClusterView,
    redirect_target: RedirectTarget,
    start_up: object,
) -> None:
    before = cluster_view.snapshot(redirect_target)
    up = _round_trip_restores_exactly(cluster_view, redirect_target, start_up)
    pod = cluster_view.create_pod(redirect_target.namespace, "endpoint-resolved")
    assert container_names(pod) == ["app", "nginx-sidecar"]
    assert up.stop(signal.SIGTERM) == 0, up.output
    assert cluster_view.snapshot(redirect_target) == before


def test_a_code_edit_during_the_session_reaches_the_apiserver_without_a_missed_call(
    tmp_path: Path,
    cluster_view: ClusterView,
    redirect_target: RedirectTarget,
    start_up: object,
) -> None:
    project = sample_project(tmp_path)
    source = project / "sample_webhook" / "sidecar_injector.py"
    up: RunningProcess = start_up(redirect_target, cwd=project)  # type: ignore[operator]
    up.wait_for("ready: kube-apiserver")

    injected = []
    for index in range(30):
        if index == 5:
            source.write_text(source.read_text().replace('"nginx-sidecar"', '"edited-sidecar"'))
        pod = cluster_view.create_pod(redirect_target.namespace, f"edit-{index}", dry_run=True)
        injected.append(container_names(pod)[-1])
        time.sleep(0.1)
    # Every call reached the code (failurePolicy Ignore would hide one that did not)...
    assert all(name in ("nginx-sidecar", "edited-sidecar") for name in injected), injected
    # ...and the edit took effect while the session ran.
    assert injected[0] == "nginx-sidecar" and injected[-1] == "edited-sidecar", injected


def test_force_restores_a_stale_sessions_leftovers_and_takes_over(
    cluster_view: ClusterView, redirect_target: RedirectTarget, start_up: Any
) -> None:
    before = cluster_view.snapshot(redirect_target)
    short_lease = {"WEBHOOK_DEV_LEASE_SECONDS": "2"}
    crashed = start_up(redirect_target, env={**short_lease, "WEBHOOK_DEV_FAULT_AFTER": "ready"})
    assert crashed.wait(120) == -signal.SIGKILL, crashed.output
    time.sleep(3)  # the Lease goes stale

    refused = start_up(redirect_target, env=short_lease)
    assert refused.wait(90) == 1, refused.output
    assert "did not finish" in refused.output and "--force" in refused.output

    taking_over = start_up(redirect_target, "--force", env=short_lease)
    taking_over.wait_for("restoring what the unfinished session")
    taking_over.wait_for("ready: kube-apiserver")
    pod = cluster_view.create_pod(redirect_target.namespace, "after-takeover")
    assert container_names(pod) == ["app", "nginx-sidecar"]
    assert taking_over.stop(signal.SIGTERM) == 0, taking_over.output
    assert cluster_view.snapshot(redirect_target) == before


def test_a_rewritten_ca_bundle_gets_our_ca_again_and_down_keeps_the_new_one(
    cluster_view: ClusterView, redirect_target: RedirectTarget, start_up: Any
) -> None:
    """What cert-manager's CA injector does when it rotates the webhook's CA mid-session."""
    up = start_up(redirect_target, env={"WEBHOOK_DEV_LEASE_SECONDS": "3"})
    up.wait_for("ready: kube-apiserver")
    rotated = base64.b64encode(certs.new_ca("rotated by cert-manager").cert_pem).decode()

    def rotate(config: dict[str, Any]) -> dict[str, Any]:
        config["webhooks"][0]["clientConfig"]["caBundle"] = rotated
        return config

    mark = up.mark()
    cluster_view.cluster.update(redirect_target.config_path, rotate)
    up.wait_for("appended our CA again", after=mark)
    pod = cluster_view.create_pod(redirect_target.namespace, "after-rotation")
    assert container_names(pod) == ["app", "nginx-sidecar"]
    assert up.stop(signal.SIGTERM) == 0, up.output
    config = cluster_view.snapshot(redirect_target)["config"]
    assert config["webhooks"][0]["clientConfig"]["caBundle"] == rotated


def test_doctor_passes_on_a_healthy_setup_and_names_gateway_ports_when_it_is_no(
    lab: Lab, state_dir: Path, cluster_view: ClusterView, redirect_target: RedirectTarget
) -> None:
    before = cluster_view.snapshot(redirect_target)
    argv = ["doctor", "--service", redirect_target.subject, "--ssh", lab.ssh_destination]
    healthy = _webhook_dev(lab, state_dir, *argv, workstation=True)
    assert healthy.returncode == 0, healthy.stderr
    assert "✓ GatewayPorts lets the forward bind the master's address" in healthy.stderr
    lab.set_gateway_ports("no")
    try:
        broken = _webhook_dev(lab, state_dir, *argv, workstation=True)
    finally:
        lab.set_gateway_ports("clientspecified")
    assert broken.returncode == 1 and "GatewayPorts clientspecified" in broken.stderr
    assert cluster_view.snapshot(redirect_target) == before
