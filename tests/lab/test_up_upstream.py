"""``up --upstream --run`` on the lab: the apiserver calls a Go webhook through the tunnel."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.lab.redirect_fixtures import ClusterView, RedirectTarget
from tests.upstream_fixtures import LanguageProject

pytestmark = pytest.mark.e2e

ANNOTATION = "webhook-dev.io/answered-by"


def test_up_with_upstream_puts_the_apiserver_call_through_the_tunnel_to_the_go_webhook(
    cluster_view: ClusterView,
    redirect_target: RedirectTarget,
    start_up: object,
    go_project: LanguageProject,
    go_toolchain: dict[str, str],
) -> None:
    subprocess.run(
        ["go", "build", "-o", "bin/webhook", "."],
        cwd=go_project.path,
        env={**os.environ, **go_toolchain},
        check=True,
        timeout=600,
    )
    before = cluster_view.snapshot(redirect_target)
    up = start_up(  # type: ignore[operator]
        redirect_target,
        "--upstream",
        go_project.url,
        "--run",
        f"bin/webhook --port {go_project.port}",
        app=None,
        cwd=go_project.path,
    )
    up.wait_for("generation 1 ready")
    up.wait_for("ready: kube-apiserver")

    pod = cluster_view.create_pod(redirect_target.namespace, "go-0")
    assert pod["metadata"]["annotations"][ANNOTATION] == "go-v1"
    up.wait_for(f"Pod {redirect_target.namespace}/go-0  CREATE  allowed  1 op")

    up.stop()
    after = cluster_view.snapshot(redirect_target)
    assert after["config"] == before["config"]
    assert after["record"] is None
