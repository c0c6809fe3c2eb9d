"""A CRD whose conversion webhook calls the same Service as a mutating webhook, under ``up``.

Two set-ups. The cluster side (caller listing, journal, restore, cainjector) uses a CRD
made per test that calls the sidecar injector's Service. The serving side uses the website
sample as an operator ships it (``sample_webhook/deploy/website.yaml``, deployed on the
lab's node: its Deployment is the production backend) with ``sample_webhook.website`` as
the local code.

The CRD (``v1`` storage, ``v2`` served) is made per test, in a group named after the test's
namespace, and calls the sidecar injector's Service at ``/convert``. ``up`` must list it as a
caller, append our CA to its ``caBundle``, re-append it after a cainjector-style rewrite, and
``down`` must put it back exactly — after SIGTERM and after ``kill -9`` at any step, from
another shell — with ``--ssh``, ``--direct`` and ``--relay``.

Run on a lab with a node (``WEBHOOK_DEV_LAB_NODE=1``) so the relay Pod can run.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.direct_fixtures import routable_node_lab  # noqa: F401 (a fixture)
from tests.harness import REPO, RunningProcess, sample_project, stopped_at_exit
from tests.lab.redirect_fixtures import (
    ClusterView,
    RedirectTarget,
    container_names,
    up_process,
)
from tests.polling import wait_until
from webhook_dev.errors import ClusterError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.lab import Lab, images
from webhook_dev.tls import certs

pytestmark = pytest.mark.e2e

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
THEIR_CA = base64.b64encode(certs.new_ca("the webhook's own CA").cert_pem).decode()
Json = dict[str, Any]


@dataclass(frozen=True)
class ConversionTarget:
    """The Service's webhook (``redirect``) and the CRD whose conversion calls it too."""

    redirect: RedirectTarget
    crd: str  # websites.<group>
    group: str
    apps: str = ""  # where the webhook's Pods are created (not the Service's namespace)

    @property
    def crd_path(self) -> str:
        return f"{CRDS}/{self.crd}"


def _crd(namespace: str, service: str) -> Json:
    group = f"{namespace}.samples.webhook-dev.io"

    def schema(properties: Json) -> Json:
        return {
            "openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "properties": properties}},
            }
        }

    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"websites.{group}"},
        "spec": {
            "group": group,
            "names": {
                "plural": "websites",
                "singular": "website",
                "kind": "Website",
                "listKind": "WebsiteList",
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": schema({"host": {"type": "string"}, "port": {"type": "integer"}}),
                },
                {
                    "name": "v2",
                    "served": True,
                    "storage": False,
                    "schema": schema({"address": {"type": "string"}}),
                },
            ],
            "conversion": {
                "strategy": "Webhook",
                "webhook": {
                    "conversionReviewVersions": ["v1"],
                    "clientConfig": {
                        "service": {
                            "namespace": namespace,
                            "name": service,
                            "path": "/convert",
                            "port": 443,
                        },
                        "caBundle": THEIR_CA,
                    },
                },
            },
        },
    }


def crd_content(cluster: Cluster, target: ConversionTarget) -> Json:
    """What ``up`` may touch in the CRD, and what ``down`` must give back exactly."""
    crd = cluster.get(target.crd_path)
    metadata = crd["metadata"]
    return {
        "spec": crd["spec"],
        "labels": metadata.get("labels"),
        "annotations": metadata.get("annotations"),
    }


def everything(view: ClusterView, target: ConversionTarget) -> Json:
    return {**view.snapshot(target.redirect), "crd": crd_content(view.cluster, target)}


def conversion_bundle(view: ClusterView, target: ConversionTarget) -> bytes:
    client_config = view.cluster.get(target.crd_path)["spec"]["conversion"]["webhook"]
    return base64.b64decode(client_config["clientConfig"]["caBundle"])


@pytest.fixture
def cluster_view(lab_node: Lab) -> ClusterView:
    """The node's cluster: where the relay Pod runs."""
    return ClusterView(Cluster.connect(kubeconfig=str(lab_node.host_kubeconfig)))


@pytest.fixture
def lab_namespace(lab_node_namespace: str) -> str:
    return lab_node_namespace


@pytest.fixture
def conversion_target(
    cluster_view: ClusterView, apps_target: RedirectTarget, apps_namespace: str
) -> Iterator[ConversionTarget]:
    """The CRD calling ``apps_target``'s Service (whose webhook intercepts Pods of
    ``apps_namespace``, not the Service's namespace, where --relay's Pod runs)."""
    manifest = _crd(apps_target.namespace, apps_target.service)
    cluster = cluster_view.cluster
    cluster.create(CRDS, manifest)
    target = ConversionTarget(
        apps_target, manifest["metadata"]["name"], manifest["spec"]["group"], apps_namespace
    )

    def established() -> bool:
        conditions = (cluster.get(target.crd_path).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_until(established, timeout=30, what=f"CRD {target.crd} established")
    try:
        yield target
    finally:
        cluster.delete(target.crd_path)


@pytest.fixture
def start(lab_node: Lab, state_dir: Path) -> Iterator[Any]:
    """``up`` over one transport, for the CRD's Service (or ``--crd`` alone)."""
    with stopped_at_exit() as processes:

        def run(
            target: ConversionTarget,
            transport: str,
            *extra: str,
            selector: list[str] | None = None,
            env: dict[str, str] | None = None,
            app: str = "sample_webhook.sidecar_injector",
            cwd: Path = REPO,
        ) -> RunningProcess:
            how = {
                "ssh": ["--ssh", lab_node.ssh_destination],
                "direct": ["--direct"],
                "relay": ["--relay", "--relay-image", images.SAMPLE_IMAGE],
            }[transport]
            argv = [
                "up",
                *(selector or ["--service", target.redirect.subject]),
                *how,
                "--app",
                app,
                *(extra or ("--no-record",)),
            ]
            environment = {
                "WEBHOOK_DEV_STATE_DIR": str(state_dir),
                "WEBHOOK_DEV_LEASE_SECONDS": "3",
                **(env or {}),
            }
            return processes.add(up_process(lab_node, argv, environment, cwd))

        yield run


def _webhook_dev(lab: Lab, state_dir: Path, *argv: str, workstation: bool = False) -> Any:
    command = [sys.executable, "-m", "webhook_dev", *argv]
    env = {"WEBHOOK_DEV_STATE_DIR": str(state_dir), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if workstation:
        command = lab.workstation_argv(command)
    else:
        env["KUBECONFIG"] = str(lab.host_kubeconfig)
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.fixture(params=["ssh", "direct", "relay"])
def transport(request: pytest.FixtureRequest) -> str:
    if request.param == "direct":
        # The CRD and its webhook live on the node's cluster, which is a second lab
        # unless the first has a node: that one must let the master reach this machine.
        request.getfixturevalue("routable_node_lab")
    return str(request.param)


def test_up_lists_the_crd_as_a_caller_redirects_it_and_sigterm_restores_it_exactly(
    cluster_view: ClusterView, conversion_target: ConversionTarget, start: Any
) -> None:
    target = conversion_target
    before = everything(cluster_view, target)
    up: RunningProcess = start(target, "ssh")
    up.wait_for("ready: kube-apiserver")

    caller = f"CustomResourceDefinition {target.crd}, conversion between v1, v2 → this machine"
    assert caller in up.output
    assert f"the conversion webhook of {target.crd} has no failurePolicy" in up.output
    bundle = conversion_bundle(cluster_view, target)
    assert bundle.startswith(base64.b64decode(THEIR_CA)) and bundle.count(b"BEGIN") >= 2
    pod = cluster_view.create_pod(target.apps, "web-0")  # admission calls come here too
    assert container_names(pod) == ["app", "nginx-sidecar"]

    assert up.stop(signal.SIGTERM) == 0, up.output
    assert "0 conflicts" in up.output
    assert everything(cluster_view, target) == before


def test_doctor_lists_the_crd_among_the_services_callers(
    lab_node: Lab,
    state_dir: Path,
    cluster_view: ClusterView,
    conversion_target: ConversionTarget,
) -> None:
    target = conversion_target
    before = everything(cluster_view, target)
    argv = ["doctor", "--service", target.redirect.subject, "--ssh", lab_node.ssh_destination]

    result = _webhook_dev(lab_node, state_dir, *argv, workstation=True)

    assert result.returncode == 0, result.stderr
    assert f"callers of Service {target.redirect.subject}:443" in result.stderr
    assert f"CustomResourceDefinition {target.crd}, conversion between v1, v2" in result.stderr
    assert everything(cluster_view, target) == before


@pytest.mark.parametrize("step", ["journal", "CustomResourceDefinition/{crd}", "ready"])
def test_down_from_another_shell_restores_the_crd_exactly_after_kill_9_of_up(
    step: str,
    transport: str,
    lab_node: Lab,
    state_dir: Path,
    cluster_view: ClusterView,
    conversion_target: ConversionTarget,
    start: Any,
) -> None:
    target = conversion_target
    before = everything(cluster_view, target)
    fault = step.format(crd=target.crd)
    up: RunningProcess = start(target, transport, env={"WEBHOOK_DEV_FAULT_AFTER": fault})
    assert up.wait(180) == -signal.SIGKILL, up.output

    result = _webhook_dev(lab_node, state_dir, "down", "--service", target.redirect.subject)

    assert result.returncode == 0, result.stdout + result.stderr
    assert everything(cluster_view, target) == before
    again = _webhook_dev(lab_node, state_dir, "down", "--service", target.redirect.subject)
    assert again.returncode == 0 and "nothing to restore" in again.stderr


def test_a_cainjector_rewrite_of_the_crds_bundle_gets_our_ca_again_and_down_keeps_theirs(
    transport: str, cluster_view: ClusterView, conversion_target: ConversionTarget, start: Any
) -> None:
    target = conversion_target
    up: RunningProcess = start(target, transport)
    up.wait_for("ready: kube-apiserver")
    rotated = certs.new_ca("rotated by cainjector").cert_pem

    def inject(crd: Json) -> Json:
        client_config = crd["spec"]["conversion"]["webhook"]["clientConfig"]
        client_config["caBundle"] = base64.b64encode(rotated).decode()
        return crd

    mark = up.mark()
    cluster_view.cluster.update(target.crd_path, inject)
    up.wait_for(f"caBundle of CustomResourceDefinition {target.crd} was rewritten", after=mark)
    bundle = conversion_bundle(cluster_view, target)
    assert bundle.startswith(rotated) and bundle.count(b"BEGIN") >= 2

    assert up.stop(signal.SIGTERM) == 0, up.output
    assert conversion_bundle(cluster_view, target) == rotated


# --- the website sample: conversions served by local code ---------------------------------

WEBSITES = "websites.samples.webhook-dev.io"
WEBSITE_API = "/apis/samples.webhook-dev.io"


@pytest.fixture(scope="module")
def website(lab_node: Lab) -> Iterator[ConversionTarget]:
    """The website sample running on the node (its Pod answers /convert and /mutate)."""
    deployed = lab_node.deploy_sample("website")
    redirect = RedirectTarget(
        deployed.namespace,
        deployed.service,
        deployed.webhook_configuration,
        "default.website.samples.webhook-dev.io",
    )
    try:
        yield ConversionTarget(redirect, WEBSITES, "samples.webhook-dev.io")
    finally:
        lab_node.delete_sample(deployed)


def _website(cluster: Cluster, version: str, name: str, spec: Json) -> Json:
    return cluster.create(
        f"{WEBSITE_API}/{version}/namespaces/websites/websites",
        {
            "apiVersion": f"samples.webhook-dev.io/{version}",
            "kind": "Website",
            "metadata": {"name": name},
            "spec": spec,
        },
    )


def _read(cluster: Cluster, version: str, name: str) -> Json:
    return cluster.get(f"{WEBSITE_API}/{version}/namespaces/websites/websites/{name}")


def test_conversions_go_through_local_code_are_recorded_and_sigterm_restores_exactly(
    transport: str,
    tmp_path: Path,
    cluster_view: ClusterView,
    website: ConversionTarget,
    start: Any,
) -> None:
    cluster = cluster_view.cluster
    name = f"blog-{transport}"
    _website(cluster, "v1", name, {"host": "blog.example.com", "port": 8080})
    before = everything(cluster_view, website)
    recording = tmp_path / "calls.jsonl"
    up: RunningProcess = start(
        website, transport, "--record", str(recording), app="sample_webhook.website"
    )
    up.wait_for("ready: kube-apiserver")

    mark = up.mark()
    assert _read(cluster, "v2", name)["spec"] == {"address": "blog.example.com:8080"}
    up.wait_for(f"Website websites/{name}  CONVERT to samples.webhook-dev.io/v2", after=mark)
    created = _website(cluster, "v2", f"shop-{transport}", {"address": "shop.example.com:9443"})
    assert created["spec"] == {"address": "shop.example.com:9443"}
    stored = _read(cluster, "v1", f"shop-{transport}")
    assert stored["spec"] == {"host": "shop.example.com", "port": 9443}

    assert up.stop(signal.SIGTERM) == 0, up.output
    assert "0 conflicts" in up.output
    assert everything(cluster_view, website) == before
    recorded = recording.read_text()
    assert '"ConversionReview"' in recorded and name in recorded
    # The production backend answers again once the cluster is restored, as soon as
    # kube-proxy routes the Service to it again (asynchronously, as after any endpoint
    # change; a conversion webhook's call is never retried, so the first reads may fail).
    shop = wait_until(
        lambda: _read(cluster, "v2", f"shop-{transport}"),
        timeout=60,
        interval=0.2,
        what="the production backend converts again after down",
        ignoring=(ClusterError,),
    )
    assert shop["spec"] == {"address": "shop.example.com:9443"}


def test_an_edit_of_the_conversion_code_is_picked_up_with_no_failed_read(
    tmp_path: Path, cluster_view: ClusterView, website: ConversionTarget, start: Any
) -> None:
    cluster = cluster_view.cluster
    _website(cluster, "v1", "edited", {"host": "edit.example.com", "port": 8443})
    project = sample_project(tmp_path)
    source = project / "sample_webhook" / "website.py"
    up: RunningProcess = start(website, "ssh", app="sample_webhook.website", cwd=project)
    up.wait_for("ready: kube-apiserver")

    addresses = []
    for index in range(30):
        if index == 5:
            edited = source.read_text().replace(
                'spec["address"] = f"{host}:{port}"', 'spec["address"] = f"{host.upper()}:{port}"'
            )
            assert edited != source.read_text()
            source.write_text(edited)
        addresses.append(_read(cluster, "v2", "edited")["spec"]["address"])  # raises if failed
        time.sleep(0.1)

    assert addresses[0] == "edit.example.com:8443", addresses
    assert addresses[-1] == "EDIT.EXAMPLE.COM:8443", addresses
    assert up.stop(signal.SIGTERM) == 0, up.output


def test_a_conversion_the_local_code_cannot_answer_is_converted_by_the_in_cluster_pod(
    transport: str,
    tmp_path: Path,
    cluster_view: ClusterView,
    website: ConversionTarget,
    start: Any,
) -> None:
    """The developer saves a half-written conversion that raises: reads in v2 keep
    working, converted by the Service's in-cluster Pod (the sample itself, reached through
    the apiserver's port-forward with every transport), and each such call is marked;
    once the code is whole again, the local code converts."""
    cluster = cluster_view.cluster
    name = f"fallback-{transport}"
    _website(cluster, "v1", name, {"host": "fall.example.com", "port": 8443})
    project = sample_project(tmp_path)
    source = project / "sample_webhook" / "website.py"
    whole = source.read_text()
    broken = whole.replace(
        "def to_v2(obj: Object) -> Object:\n",
        'def to_v2(obj: Object) -> Object:\n    raise RuntimeError("half-written conversion")\n',
    )
    assert broken != whole
    up: RunningProcess = start(website, transport, app="sample_webhook.website", cwd=project)
    up.wait_for("ready: kube-apiserver")
    up.wait_for(r"answered by the in-cluster Pod website/website-.*answered-in-cluster")

    source.write_text(broken)
    up.wait_for(r" 2 ready \(pid")
    mark = up.mark()
    read = _read(cluster, "v2", name)  # raises if the read failed
    assert read["spec"] == {"address": "fall.example.com:8443"}, read
    up.wait_for(rf"Website websites/{name}  CONVERT .* converted .*\[gen 2\]", after=mark)
    up.wait_for(r"^    ! answered-in-cluster: your code could not answer \(HTTP 500\)", after=mark)
    up.wait_for("half-written conversion", after=mark)  # the developer sees why

    source.write_text(whole)
    up.wait_for(r" 3 ready \(pid")
    mark = up.mark()
    read = _read(cluster, "v2", name)
    assert read["spec"] == {"address": "fall.example.com:8443"}, read
    up.wait_for(rf"Website websites/{name}  CONVERT .* converted .*\[gen 3\]", after=mark)
    time.sleep(0.5)  # a flag is printed right under its call
    assert "answered-in-cluster" not in "\n".join(up.lines[mark:]), up.output
    assert up.stop(signal.SIGTERM) == 0, up.output


def test_crd_alone_redirects_a_url_conversion_proves_it_and_down_restores_it(
    cluster_view: ClusterView, conversion_target: ConversionTarget, start: Any
) -> None:
    target = conversion_target

    def by_url(crd: Json) -> Json:
        crd["spec"]["conversion"]["webhook"]["clientConfig"] = {
            "url": "https://converter.example.invalid:8443/convert",
            "caBundle": THEIR_CA,
        }
        return crd

    cluster_view.cluster.update(target.crd_path, by_url)
    before = crd_content(cluster_view.cluster, target)
    up: RunningProcess = start(target, "ssh", selector=["--crd", target.crd])

    ready = up.wait_for("ready: kube-apiserver")
    assert "→ url → tunnel → your code" in ready
    assert "(by a dry-run create of a Website in v2" in ready
    client_config = cluster_view.cluster.get(target.crd_path)["spec"]["conversion"]["webhook"]
    assert client_config["clientConfig"]["url"].endswith("/convert")
    assert "example.invalid" not in client_config["clientConfig"]["url"]
    assert up.stop(signal.SIGTERM) == 0, up.output
    assert crd_content(cluster_view.cluster, target) == before


def test_crd_alone_takes_the_website_service_with_its_defaulting_webhook(
    cluster_view: ClusterView, website: ConversionTarget, start: Any
) -> None:
    cluster = cluster_view.cluster
    _website(cluster, "v1", "alone", {"host": "alone.example.com"})
    before = everything(cluster_view, website)
    up: RunningProcess = start(
        website, "ssh", selector=["--crd", WEBSITES], app="sample_webhook.website"
    )

    ready = up.wait_for("ready: kube-apiserver")
    assert "→ website.website.svc → tunnel → your code" in ready
    assert "(by a read of Website " in ready
    assert "MutatingWebhookConfiguration website, entry default.website" in up.output
    mark = up.mark()
    _website(cluster, "v1", "defaulted", {"host": "d.example.com"})  # defaulting, here
    up.wait_for(r"Website websites/defaulted  CREATE  allowed", after=mark)
    assert _read(cluster, "v1", "defaulted")["spec"]["port"] == 443
    assert up.stop(signal.SIGTERM) == 0, up.output
    assert everything(cluster_view, website) == before


def test_a_personal_redirect_leaves_the_conversion_in_the_cluster_and_says_so(
    cluster_view: ClusterView, conversion_target: ConversionTarget, start: Any
) -> None:
    target = conversion_target
    before = crd_content(cluster_view.cluster, target)
    up: RunningProcess = start(target, "ssh", "--no-record", "--only-namespace", target.apps)
    up.wait_for("ready: kube-apiserver")

    assert (
        f"CustomResourceDefinition {target.crd}, conversion → stays with the in-cluster "
        "Service (a conversion cannot be scoped to a person)"
    ) in up.output
    assert "has no failurePolicy" not in up.output  # nothing depends on this machine
    assert crd_content(cluster_view.cluster, target) == before
    assert up.stop(signal.SIGTERM) == 0, up.output
    assert crd_content(cluster_view.cluster, target) == before
