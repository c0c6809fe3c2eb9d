"""``webhook-dev demo --once``: README's main command, on the lab, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from webhook_dev.kube.cluster import Cluster
from webhook_dev.lab import Lab

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_cleanup(lab: Lab) -> Iterator[Cluster]:
    """The demo installs the sample into the lab; remove it so other tests see a clean lab."""
    cluster = Cluster.connect(kubeconfig=str(lab.host_kubeconfig))
    yield cluster
    cluster.delete(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/sidecar-injector"
    )
    for namespace in ("sidecar-demo", "sidecar-injector"):
        cluster.delete(f"/api/v1/namespaces/{namespace}")


def test_demo_injects_a_sidecar_through_the_tunnel_shows_it_and_restores(
    lab: Lab, demo_cleanup: Cluster, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "WEBHOOK_DEV_STATE_DIR": str(tmp_path / "state"),
        "WEBHOOK_DEV_LAB_DIR": str(lab.layout.root),
    }
    result = subprocess.run(
        [sys.executable, "-m", "webhook_dev", "demo", "--once"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Using the running lab" in output  # it never tears down a lab it did not start
    assert "ready: kube-apiserver → sidecar-injector.sidecar-injector.svc → tunnel" in output
    assert "has containers: web, nginx-sidecar" in output
    assert "+    name: nginx-sidecar" in output  # the diff of the patch
    assert "0 conflicts" in output
    lease = demo_cleanup.get_or_none(
        "/apis/coordination.k8s.io/v1/namespaces/sidecar-injector/leases/"
        "webhook-dev-sidecar-injector"
    )
    assert lease is None
    service = demo_cleanup.get("/api/v1/namespaces/sidecar-injector/services/sidecar-injector")
    assert service["spec"]["selector"] == {"app": "sidecar-injector"}
    assert lab.healthy()
