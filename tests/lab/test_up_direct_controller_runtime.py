"""A kubebuilder-style webhook (controller-runtime's webhook server, in Go) behind
``up --direct --upstream https://... --upstream-cert-dir DIR --run``, answering the lab's
apiserver; an edit of its Go code is rebuilt with no missed call.

The first build downloads controller-runtime's modules into Go's module cache and fills
its build cache (outside the repository, like ``tests/go_webhook``); later builds in the
workstation namespace, which has no route to the module proxy, use both offline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import RunningProcess
from tests.lab.redirect_fixtures import ClusterView, RedirectTarget
from tests.upstream_fixtures import TESTS, LanguageProject
from webhook_dev.lab import Lab

pytestmark = pytest.mark.e2e

ANNOTATION = "webhook-dev.io/answered-by"
SOURCE = TESTS / "controller_runtime_webhook"
BUILD = "go build -o bin/webhook ."


@pytest.fixture(scope="session")
def controller_runtime_toolchain(
    go_toolchain: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Go's environment, with controller-runtime's modules downloaded and built once."""
    warm = tmp_path_factory.mktemp("controller-runtime-warm")
    subprocess.run(
        ["go", "build", "-o", str(warm / "webhook"), "."],
        cwd=SOURCE,
        env={**os.environ, **go_toolchain},
        check=True,
        timeout=1800,
        capture_output=True,
    )
    # In the workstation namespace there is no module proxy: fail at once, not on DNS.
    return {**go_toolchain, "GOPROXY": "off", "GOFLAGS": "-mod=readonly"}


@pytest.fixture
def controller_runtime_project(
    tmp_path: Path, controller_runtime_toolchain: dict[str, str]
) -> Iterator[LanguageProject]:
    path = tmp_path / "cr-webhook"
    shutil.copytree(SOURCE, path, ignore=shutil.ignore_patterns("bin"))
    template = (
        "package main\n\n"
        "// Version is what the tests edit: it comes back as the answer's warning and "
        "annotation.\n"
        'const Version = "{version}"\n'
    )
    yield LanguageProject(path, path / "version.go", template)


def test_a_controller_runtime_webhook_answers_the_apiserver_through_up_direct_and_rebuilds(
    tmp_path: Path,
    routable_lab: Lab,
    cluster_view: ClusterView,
    redirect_target: RedirectTarget,
    start_direct: Any,
    controller_runtime_project: LanguageProject,
    controller_runtime_toolchain: dict[str, str],
) -> None:
    project = controller_runtime_project
    cert_dir = tmp_path / "k8s-webhook-server" / "serving-certs"
    before = cluster_view.snapshot(redirect_target)
    up: RunningProcess = start_direct(
        redirect_target,
        "--upstream", f"https://127.0.0.1:{project.port}",
        "--upstream-cert-dir", str(cert_dir),
        "--build", BUILD,
        "--run", f"bin/webhook --port {project.port} --cert-dir {cert_dir}",
        app=None,
        cwd=project.path,
        env=controller_runtime_toolchain,
    )  # fmt: skip
    up.wait_for("generation 1 ready", timeout=600)
    up.wait_for("ready: kube-apiserver")
    for name in ("tls.crt", "tls.key"):
        assert (cert_dir / name).stat().st_mode & 0o777 == 0o600

    pod = cluster_view.create_pod(redirect_target.namespace, "cr-0")
    assert pod["metadata"]["annotations"][ANNOTATION] == "go-v1"

    mark = up.mark()
    project.set_version("v2")
    answered = []
    deadline = time.monotonic() + 600
    while not answered or answered[-1] != "go-v2":
        assert time.monotonic() < deadline, up.output
        pod = cluster_view.create_pod(
            redirect_target.namespace, f"cr-edit-{len(answered)}", dry_run=True
        )
        # failurePolicy Ignore would let a missed call through without the annotation.
        answered.append((pod["metadata"].get("annotations") or {}).get(ANNOTATION))
        time.sleep(0.2)
    up.wait_for("generation 2 ready", after=mark)
    assert set(answered) <= {"go-v1", "go-v2"}, answered

    assert up.stop() == 0, up.output
    assert cluster_view.snapshot(redirect_target) == before
