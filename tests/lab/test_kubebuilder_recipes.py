"""README's kubebuilder recipes, run exactly as docs/recipes/direct.md writes them, on a
project exactly as kubebuilder v4.16.0 scaffolds it (``tests/kubebuilder_project.py``).

The cluster holds what ``make deploy`` would install, less the manager's Deployment and
cert-manager's objects (the lab has no cert-manager): the Namespace, the CRD (v1 storage
and hub, v2 served, conversion through the webhook Service), both webhook configurations
and the Service, each ``caBundle`` a CA nobody here holds the key of — as in a user's
cluster where cert-manager injected its own. The commands are read from the page, so the
page cannot drift from what is tested.
"""

from __future__ import annotations

import base64
import contextlib
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import REPO, RunningProcess, stopped_at_exit
from tests.kubebuilder_project import (
    DEFAULT_FOO,
    DENIAL,
    FORBIDDEN_FOO,
    KubebuilderUnavailable,
    copy_project,
    find_go,
    go_env,
)
from tests.lab.redirect_fixtures import ClusterView, up_process
from tests.missing import unavailable
from tests.polling import wait_until
from webhook_dev.kube.cluster import Cluster, ClusterError, NotFound
from webhook_dev.lab import Lab
from webhook_dev.tls import certs

pytestmark = pytest.mark.e2e

RECIPES = REPO / "docs" / "recipes" / "direct.md"
SECTION = "## kubebuilder / controller-runtime / operator-sdk"
NAMESPACE = "guestbook-system"
SERVICE = "guestbook-webhook-service"
CRD = "guestbooks.webapp.example.com"
WEBHOOK_API = "/apis/admissionregistration.k8s.io/v1"
CRD_API = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
GUESTBOOKS = "/apis/webapp.example.com/{version}/namespaces/default/guestbooks"
INSTALLED = {
    "Namespace",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
}
STARTUP_SECONDS = 900  # `make run` vets and compiles the manager; cold caches on 2 cores


def recipe_commands() -> list[list[str]]:
    """The ``$ webhook-dev up ...`` commands of the page's kubebuilder section, as argv."""
    text = RECIPES.read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    commands, current = [], ""
    for line in section.splitlines():
        if not current and not line.startswith("$ webhook-dev up "):
            continue
        current += line.removeprefix("$ ").rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            commands.append(shlex.split(current))
            current = ""
    return commands


def project_manifests(project: Path, placeholder_ca: str) -> list[dict[str, Any]]:
    """``kustomize build config/default`` less the Deployment, RBAC, metrics and cert-manager."""
    built = subprocess.run(
        ["bin/kustomize", "build", "config/default"],
        cwd=project, check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    kept = []
    for manifest in yaml.safe_load_all(built):
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        if kind not in INSTALLED and not (kind == "Service" and name == SERVICE):
            continue
        manifest["metadata"].get("annotations", {}).pop("cert-manager.io/inject-ca-from", None)
        for webhook in manifest.get("webhooks", []):
            webhook["clientConfig"]["caBundle"] = placeholder_ca
        conversion = manifest.get("spec", {}).get("conversion", {}).get("webhook")
        if conversion:
            conversion["clientConfig"]["caBundle"] = placeholder_ca
        kept.append(manifest)
    assert {m["kind"] for m in kept} == INSTALLED | {"Service"}, kept
    return kept


def collection(manifest: dict[str, Any]) -> str:
    kind, namespace = manifest["kind"], manifest["metadata"].get("namespace")
    return {
        "Namespace": "/api/v1/namespaces",
        "Service": f"/api/v1/namespaces/{namespace}/services",
        "CustomResourceDefinition": CRD_API,
        "MutatingWebhookConfiguration": f"{WEBHOOK_API}/mutatingwebhookconfigurations",
        "ValidatingWebhookConfiguration": f"{WEBHOOK_API}/validatingwebhookconfigurations",
    }[kind]


def content(cluster: Cluster, manifests: list[dict[str, Any]]) -> list[Any]:
    """What a user would compare after ``down``: each object without server bookkeeping."""
    seen = []
    for manifest in manifests:
        current = cluster.get(f"{collection(manifest)}/{manifest['metadata']['name']}")
        for key in ("resourceVersion", "managedFields", "generation"):
            current["metadata"].pop(key, None)
        current.pop("status", None)
        seen.append(current)
    return seen


@pytest.fixture
def guestbook(tmp_path: Path) -> Path:
    try:
        return copy_project(tmp_path / "guestbook")
    except KubebuilderUnavailable as error:
        unavailable(str(error))


@pytest.fixture
def installed(guestbook: Path, cluster_view: ClusterView) -> Iterator[list[dict[str, Any]]]:
    cluster = cluster_view.cluster
    placeholder_ca = base64.b64encode(certs.new_ca("cert-manager placeholder").cert_pem).decode()
    manifests = project_manifests(guestbook, placeholder_ca)
    for manifest in manifests:
        name = manifest["metadata"]["name"]
        if cluster.get_or_none(f"{collection(manifest)}/{name}") is None:
            cluster.create(collection(manifest), manifest)
    wait_until(lambda: established(cluster), timeout=30, what=f"CRD {CRD} established")
    yield manifests
    for manifest in reversed(manifests):
        if manifest["kind"] != "Namespace":
            cluster.delete(f"{collection(manifest)}/{manifest['metadata']['name']}")


def established(cluster: Cluster) -> bool:
    conditions = cluster.get(f"{CRD_API}/{CRD}").get("status", {}).get("conditions", [])
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def guestbook_manifest(name: str, version: str = "v1", **spec: str) -> dict[str, Any]:
    return {
        "apiVersion": f"webapp.example.com/{version}",
        "kind": "Guestbook",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


def assert_webhooks_reach_the_local_manager(cluster: Cluster, suffix: str) -> None:
    created = cluster.create(
        GUESTBOOKS.format(version="v1"), guestbook_manifest(f"defaulted-{suffix}")
    )
    assert created["spec"] == {"foo": DEFAULT_FOO}  # failurePolicy Ignore would leave it empty
    with pytest.raises(ClusterError) as denied:
        cluster.create(
            GUESTBOOKS.format(version="v1"),
            guestbook_manifest(f"denied-{suffix}", foo=FORBIDDEN_FOO),
        )
    assert DENIAL in str(denied.value)
    with pytest.raises(NotFound):
        cluster.get(f"{GUESTBOOKS.format(version='v1')}/denied-{suffix}")


@contextlib.contextmanager
def recipe_running(
    recipe: int, lab: Lab, guestbook: Path, state_dir: Path
) -> Iterator[RunningProcess]:
    """The page's ``recipe``-th ``webhook-dev up`` command, run in the project, once ready."""
    commands = recipe_commands()
    assert len(commands) == 2, commands
    argv = commands[recipe]
    assert argv[:2] == ["webhook-dev", "up"], argv
    go = find_go()
    assert go is not None  # copy_project needed it
    # The workstation namespace has no route to the module proxy: the project's build
    # filled the module cache; fail at once rather than on DNS.
    env = {**go_env(go), "GOPROXY": "off", "WEBHOOK_DEV_STATE_DIR": str(state_dir)}
    with stopped_at_exit() as processes:
        up: RunningProcess = processes.add(up_process(lab, argv[1:], env, guestbook))
        up.wait_for("generation 1 ready", timeout=STARTUP_SECONDS)
        up.wait_for(r"^ready\b", timeout=120)  # with no dry-run probe: "ready (no probe...)"
        yield up


@pytest.mark.parametrize("recipe", [0, 1], ids=["make-run", "build-then-run"])
def test_the_kubebuilder_recipe_as_written_serves_defaulting_and_validation_locally(
    recipe: int,
    routable_lab: Lab,
    cluster_view: ClusterView,
    installed: list[dict[str, Any]],
    guestbook: Path,
    state_dir: Path,
) -> None:
    cluster = cluster_view.cluster
    before = content(cluster, installed)
    with recipe_running(recipe, routable_lab, guestbook, state_dir) as up:
        assert_webhooks_reach_the_local_manager(cluster, str(recipe))
        assert "generation 2" not in up.output  # make generate's rewrites restart nothing
        assert up.stop() == 0, up.output
    cluster.delete(f"{GUESTBOOKS.format(version='v1')}/defaulted-{recipe}")
    assert content(cluster, installed) == before


def test_the_make_run_recipe_converts_between_v1_and_v2_with_the_local_manager(
    routable_lab: Lab,
    cluster_view: ClusterView,
    installed: list[dict[str, Any]],
    guestbook: Path,
    state_dir: Path,
) -> None:
    """Needs the CRD's caBundle redirected with the Service (the crd-redirect branch)."""
    cluster = cluster_view.cluster
    v1, v2 = GUESTBOOKS.format(version="v1"), GUESTBOOKS.format(version="v2")
    with recipe_running(0, routable_lab, guestbook, state_dir):
        # the CRD's removal (the fixture) takes these Guestbooks with it
        cluster.create(v1, guestbook_manifest("written-as-v1", foo="moved"))
        assert cluster.get(f"{v2}/written-as-v1")["spec"] == {"bar": "moved"}
        created = cluster.create(v2, guestbook_manifest("written-as-v2", "v2", bar="back"))
        assert created["spec"] == {"bar": "back"}
        assert cluster.get(f"{v1}/written-as-v2")["spec"] == {"foo": "back"}
