"""``webhook-dev demo --once``: README's main command, on the lab, as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.polling import wait_until
from webhook_dev.kube.cluster import Cluster
from webhook_dev.lab import Lab

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_cleanup(lab_node: Lab) -> Iterator[Cluster]:
    """The demo deploys the sample into the lab; remove it (and wait until its namespaces
    are gone) so other tests, which may deploy it again, see a clean lab."""
    cluster = Cluster.connect(kubeconfig=str(lab_node.host_kubeconfig))
    yield cluster
    cluster.delete(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/sidecar-injector"
    )
    namespaces = [f"/api/v1/namespaces/{name}" for name in ("sidecar-demo", "sidecar-injector")]
    for path in namespaces:
        cluster.delete(path)
    wait_until(
        lambda: all(cluster.get_or_none(path) is None for path in namespaces),
        timeout=90,
        what="the demo's namespaces are deleted",
    )


def test_demo_injects_a_sidecar_through_the_tunnel_shows_it_and_restores(
    lab_node: Lab, demo_cleanup: Cluster, tmp_path: Path
) -> None:
    """The demo's lab has a node: the sample's Deployment serves in-cluster, and the Pod the
    local code injected runs with its sidecar."""
    lab = lab_node
    env = {
        **os.environ,
        "WEBHOOK_DEV_STATE_DIR": str(tmp_path / "state"),
        "WEBHOOK_DEV_LAB_DIR": str(lab.layout.root),
    }
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "webhook_dev", "demo", "--once"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    print(f"demo --once on a running lab: {time.monotonic() - started:.1f}s")
    assert result.returncode == 0, output
    assert "Using the running lab" in output  # it never tears down a lab it did not start
    assert "ready: kube-apiserver → sidecar-injector.sidecar-injector.svc → tunnel" in output
    assert "has containers: web, nginx-sidecar" in output
    assert "+    name: nginx-sidecar" in output  # the diff of the patch
    assert "serving in-cluster at 10." in output  # the sample's real Deployment
    # The injected Pod runs on the node with both containers, as kubectl get pod shows it.
    assert re.search(r"^\s+demo-[0-9a-f]{4}\s+2/2\s+Running\s+0\s+\d+s$", output, re.M), output
    assert "0 conflicts" in output
    lease = demo_cleanup.get_or_none(
        "/apis/coordination.k8s.io/v1/namespaces/sidecar-injector/leases/"
        "webhook-dev-sidecar-injector"
    )
    assert lease is None
    service = demo_cleanup.get("/api/v1/namespaces/sidecar-injector/services/sidecar-injector")
    assert service["spec"]["selector"] == {"app": "sidecar-injector"}
    assert lab.healthy()
