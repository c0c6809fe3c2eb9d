"""``up --shadow`` against the lab: production (the sidecar injector sample, a Pod on the
node) keeps deciding, the local code answers the same calls, every difference is shown.

Production injects the lab's nginx image; the local code is the same sample started with
another ``SIDECAR_IMAGE``, so the two differ exactly on the Pods that get a sidecar and
agree on the Pods that opt out (``sidecar-injector/inject: "false"``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.direct_fixtures import routable_node_lab  # noqa: F401 (a fixture)
from tests.harness import REPO, WEBHOOK_DEV, RunningProcess, sample_project, stopped_at_exit
from tests.lab import test_personal_redirect as personal_test
from tests.lab import test_up_down_in_cluster_replica as replica_test
from tests.lab.conftest import WebhookTLS, webhook_server_argv
from tests.lab.redirect_fixtures import ClusterView, up_process
from tests.lab.test_personal_redirect import Developer
from tests.polling import wait_until
from webhook_dev.kube.cluster import Cluster
from webhook_dev.lab import Lab
from webhook_dev.lab.images import NGINX_IMAGE, PAUSE_IMAGE, SAMPLE_IMAGE
from webhook_dev.lab.workloads import DeployedSample
from webhook_dev.recording.reader import read_recording
from webhook_dev.tls import certs

pytestmark = pytest.mark.e2e

# Production is the in-cluster replica of that test: the same fixtures.
sidecar_in_cluster = replica_test.sidecar_in_cluster
node_view = replica_test.node_view
INJECTED_NAMESPACE = replica_test.INJECTED_NAMESPACE

LOCAL_IMAGE = "candidate.example/nginx:next"
WEBHOOK_API = "/apis/admissionregistration.k8s.io/v1"
Json = dict[str, Any]


def _config_path(deployed: DeployedSample) -> str:
    return f"{WEBHOOK_API}/mutatingwebhookconfigurations/{deployed.webhook_configuration}"


def _content(obj: Json) -> Json:
    clean: Json = json.loads(json.dumps(obj))
    for key in ("resourceVersion", "managedFields", "generation"):
        clean["metadata"].pop(key, None)
    return clean


def _create_pod_in(view: ClusterView, namespace: str, name: str) -> Json:
    """A dry-run Pod in ``namespace``, as admitted."""
    return _create_pod(view, name, namespace=namespace)[0]


def _create_pod(
    view: ClusterView, name: str, *, opt_out: bool = False, namespace: str = INJECTED_NAMESPACE
) -> tuple[Json, float]:
    """Create a Pod (dry run: the webhooks are called just the same); its admitted
    manifest and how long the apiserver took."""
    annotations = {"sidecar-injector/inject": "false"} if opt_out else {}
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": PAUSE_IMAGE, "imagePullPolicy": "Never"}]},
    }
    started = time.monotonic()
    pod = view.cluster.create(f"/api/v1/namespaces/{namespace}/pods", manifest, dry_run=True)
    return pod, time.monotonic() - started


def _sidecar_image(pod: Json) -> str | None:
    for container in pod["spec"]["containers"]:
        if container["name"] == "nginx-sidecar":
            return str(container["image"])
    return None


@pytest.fixture
def shadow_up(
    lab_node: Lab, state_dir: Path, sidecar_in_cluster: DeployedSample
) -> Iterator[Callable[..., RunningProcess]]:
    with stopped_at_exit() as processes:

        def start(*extra: str, transport: str = "ssh") -> RunningProcess:
            deployed = sidecar_in_cluster
            how = {
                "ssh": ["--ssh", lab_node.ssh_destination],
                "direct": ["--direct"],
                "relay": ["--relay", "--relay-image", SAMPLE_IMAGE],
            }[transport]
            argv = [
                "up",
                "--service",
                f"{deployed.namespace}/{deployed.service}",
                *how,
                "--shadow",
                "--app",
                "sample_webhook.sidecar_injector",
                "--no-inspector",
                *extra,
            ]
            env = {"WEBHOOK_DEV_STATE_DIR": str(state_dir), "SIDECAR_IMAGE": LOCAL_IMAGE}
            return processes.add(up_process(lab_node, argv, env, REPO))

        yield start


@pytest.mark.parametrize("transport", ["ssh", "direct", "relay"])
def test_production_decides_and_exactly_the_differing_calls_are_reported(
    transport: str,
    request: pytest.FixtureRequest,
    lab_node: Lab,
    sidecar_in_cluster: DeployedSample,
    node_view: ClusterView,
    shadow_up: Callable[..., RunningProcess],
    tmp_path: Path,
) -> None:
    if transport == "direct":  # the copy entry calls the workstation straight
        request.getfixturevalue("routable_node_lab")
    config_path = _config_path(sidecar_in_cluster)
    before = _content(node_view.cluster.get(config_path))
    recording = tmp_path / "shadow.jsonl"
    up = shadow_up("--record", str(recording), transport=transport)
    up.wait_for("ready: kube-apiserver")
    during = node_view.cluster.get(config_path)
    assert [entry["name"] for entry in during["webhooks"]][-1] == before["webhooks"][0]["name"]
    production = dict(during["webhooks"][-1])
    if transport == "relay":  # the relay Pod is shielded from it, as from every webhook
        production["objectSelector"] = before["webhooks"][0].get("objectSelector", {})
    assert production == before["webhooks"][0]  # production's entry untouched

    pods = {"same-0": True, "differs-0": False, "same-1": True, "differs-1": False}
    for name, opt_out in pods.items():
        pod, _ = _create_pod(node_view, name, opt_out=opt_out)
        # Production decided: its image, never the local code's.
        assert _sidecar_image(pod) == (None if opt_out else NGINX_IMAGE), name
    for name, opt_out in pods.items():
        mark = "= production" if opt_out else "≠ production: object"
        up.wait_for(f"Pod {INJECTED_NAMESPACE}/{name}  CREATE  allowed.*{mark}", timeout=20)

    assert up.stop(signal.SIGTERM) == 0, up.output
    assert _content(node_view.cluster.get(config_path)) == before
    summary = up.wait_for("^shadow: ")
    assert " differed" in summary
    print("\n".join(line for line in up.lines if "production" in line or "shadow" in line))

    exchanges = {
        exchange.request.get("name"): exchange
        for exchange in read_recording(recording)[0]
        if exchange.request.get("name") in pods
    }
    assert set(exchanges) == set(pods)
    for name, exchange in exchanges.items():
        shadow = exchange.shadow
        assert shadow is not None and shadow.control is not None, name
        uid = exchange.request["uid"]
        # The local code and production each answered this very request.
        assert exchange.response["uid"] == uid
        assert shadow.control.review is not None
        assert shadow.control.review["response"]["uid"] == uid
        assert shadow.differed is (not pods[name]), (name, shadow.to_json())


def test_a_stopped_up_changes_no_decision_and_costs_at_most_the_copys_timeout(
    sidecar_in_cluster: DeployedSample,
    node_view: ClusterView,
    shadow_up: Callable[..., RunningProcess],
) -> None:
    up = shadow_up("--no-record")
    up.wait_for("ready: kube-apiserver")
    _, warm = _create_pod(node_view, "warm")
    os.killpg(up.pid, signal.SIGSTOP)
    try:
        pod, took = _create_pod(node_view, "while-stopped")
        assert _sidecar_image(pod) == NGINX_IMAGE
        # The copy's timeoutSeconds is 1 and failurePolicy Ignore: the call waits at most
        # about a second for this machine, then production's answer stands.
        assert took < 1.0 + warm + 1.0, f"{took:.2f} s with up stopped ({warm:.2f} s warm)"
        print(f"create with up stopped: {took:.2f} s (warm: {warm:.2f} s)")
    finally:
        os.killpg(up.pid, signal.SIGCONT)
    assert up.stop(signal.SIGTERM) == 0, up.output


def test_kill_9_then_down_leaves_the_cluster_exactly_as_before(
    lab_node: Lab,
    sidecar_in_cluster: DeployedSample,
    node_view: ClusterView,
    shadow_up: Callable[..., RunningProcess],
    state_dir: Path,
) -> None:
    config_path = _config_path(sidecar_in_cluster)
    before = _content(node_view.cluster.get(config_path))
    up = shadow_up("--no-record")
    up.wait_for("ready: kube-apiserver")
    assert len(node_view.cluster.get(config_path)["webhooks"]) == 2
    up.stop(signal.SIGKILL)
    # Production still decides while the copy calls nobody.
    pod, _ = _create_pod(node_view, "after-kill")
    assert _sidecar_image(pod) == NGINX_IMAGE
    deployed = sidecar_in_cluster
    down = subprocess.run(
        lab_node.workstation_argv(
            [*WEBHOOK_DEV, "down", "--service", f"{deployed.namespace}/{deployed.service}"]
        ),
        env={**os.environ, "WEBHOOK_DEV_STATE_DIR": str(state_dir)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert down.returncode == 0, down.stdout + down.stderr
    assert _content(node_view.cluster.get(config_path)) == before


def _ready_pods(view: ClusterView, deployed: DeployedSample) -> dict[str, str]:
    """Pod name -> ``ip:port`` of each Ready backend in the Service's EndpointSlices."""
    slices = view.cluster.list(
        f"/apis/discovery.k8s.io/v1/namespaces/{deployed.namespace}/endpointslices",
        label_selector=f"kubernetes.io/service-name={deployed.service}",
    )
    ready = {}
    for endpoint_slice in slices:
        port = (endpoint_slice.get("ports") or [{}])[0].get("port")
        for endpoint in endpoint_slice.get("endpoints") or []:
            name = (endpoint.get("targetRef") or {}).get("name")
            if name and (endpoint.get("conditions") or {}).get("ready"):
                ready[name] = f"{endpoint['addresses'][0]}:{port}"
    return ready


def test_a_rollout_of_production_is_followed_to_its_new_pod(
    lab_node: Lab,
    sidecar_in_cluster: DeployedSample,
    node_view: ClusterView,
    shadow_up: Callable[..., RunningProcess],
) -> None:
    """Production's Pod is replaced (as by a rollout) while ``up --shadow`` runs: the next
    call is compared with production at its new Pod, not reported as unreachable."""
    deployed = sidecar_in_cluster
    up = shadow_up("--no-record")
    up.wait_for("ready: kube-apiserver")
    reached = up.wait_for("production reached through the apiserver's port-forward to Pod ")
    found = re.search(r"to Pod [^/]+/([^:]+):", reached)
    assert found is not None, reached
    old = found.group(1)

    node_view.cluster.delete(f"/api/v1/namespaces/{deployed.namespace}/pods/{old}", grace_period=0)
    new = wait_until(
        lambda: [ip for name, ip in _ready_pods(node_view, deployed).items() if name != old],
        timeout=90,
        interval=0.5,
        what="the Deployment's new Pod Ready in the Service's EndpointSlices",
    )
    wait_until(  # the apiserver reaches production through kube-proxy
        lambda: (
            sorted(lab_node.proxy_destinations(deployed.namespace, deployed.service)) == sorted(new)
        ),
        timeout=30,
        what="kube-proxy routes the Service to the new Pod only",
    )
    mark = up.mark()
    pod, _ = _create_pod(node_view, "after-rollout")
    assert _sidecar_image(pod) == NGINX_IMAGE  # production decided
    up.wait_for(
        f"Pod {INJECTED_NAMESPACE}/after-rollout  CREATE  allowed.*≠ production: object",
        after=mark,
        timeout=20,
    )
    moved = up.wait_for(r"^production reached through Pod .* now", after=mark)
    assert old in moved and old not in moved.split(" now", 1)[0], moved
    assert up.stop(signal.SIGTERM) == 0, up.output


@pytest.fixture
def node_developers(lab_node: Lab, tmp_path: Path) -> Iterator[Callable[[str], Developer]]:
    yield from personal_test.developers_on(lab_node, tmp_path)


def test_two_developers_shadow_disjoint_namespaces_and_kill_9_then_down_removes_only_one(
    lab_node: Lab,
    lab_node_namespace: str,
    sidecar_in_cluster: DeployedSample,
    node_view: ClusterView,
    node_developers: Callable[[str], Developer],
) -> None:
    """alice shadows production in namespace a, bob in b (``--only-namespace``): each
    compares exactly the calls of their own namespace, nobody's those of c, and production
    decides all. alice's ``up`` dies by ``kill -9``; her ``down`` from another shell removes
    her copy only, and bob's shadow goes on."""
    deployed = sidecar_in_cluster
    admin = node_view.cluster
    namespaces = {short: f"{lab_node_namespace}-{short}" for short in ("a", "b", "c")}
    for name in namespaces.values():  # production's namespaceSelector matches all three
        personal_test.make_namespace(admin, name, {"sidecar-inject": "enabled"})
    try:
        _two_shadows(lab_node, deployed, node_view, node_developers, namespaces)
    finally:
        for name in namespaces.values():
            admin.delete(f"/api/v1/namespaces/{name}")


def _two_shadows(
    lab_node: Lab,
    deployed: DeployedSample,
    view: ClusterView,
    developers: Callable[[str], Developer],
    namespaces: dict[str, str],
) -> None:
    admin = view.cluster
    config_path = _config_path(deployed)
    alice, bob = developers("alice"), developers("bob")
    before = _content(admin.get(config_path))
    service = f"{deployed.namespace}/{deployed.service}"

    with stopped_at_exit() as processes:

        def shadow(developer: Developer, namespace: str) -> RunningProcess:
            argv = ["up", "--service", service, "--ssh", lab_node.ssh_destination]
            argv += ["--shadow", "--only-namespace", namespace]
            argv += ["--kubeconfig", str(developer.workstation_kubeconfig)]
            argv += ["--app", "sample_webhook.sidecar_injector", "--no-record", "--no-inspector"]
            env = {"WEBHOOK_DEV_STATE_DIR": str(developer.state_dir), "SIDECAR_IMAGE": LOCAL_IMAGE}
            up = processes.add(up_process(lab_node, argv, env, REPO))
            up.wait_for("ready: kube-apiserver")
            return up

        up_a = shadow(alice, namespaces["a"])
        up_b = shadow(bob, namespaces["b"])
        copies = [entry["name"] for entry in admin.get(config_path)["webhooks"][:-1]]
        assert [name.split(".")[:2] for name in copies] == [
            ["webhook-dev-shadow", "alice"],
            ["webhook-dev-shadow", "bob"],
        ], copies

        for short, namespace in namespaces.items():
            pod = _create_pod_in(view, namespace, f"pod-{short}")
            assert _sidecar_image(pod) == NGINX_IMAGE, f"production decides in {short}"
        up_a.wait_for(f"Pod {namespaces['a']}/pod-a  CREATE  allowed.*≠ production", timeout=20)
        up_b.wait_for(f"Pod {namespaces['b']}/pod-b  CREATE  allowed.*≠ production", timeout=20)
        time.sleep(1)  # a call shadowed by the wrong copy would be on the console by now
        for up, others in ((up_a, ("b", "c")), (up_b, ("a", "c"))):
            for short in others:
                assert f"/pod-{short}  CREATE" not in up.output, (short, up.output)

        up_a.stop(signal.SIGKILL)
        alices_shell = [*WEBHOOK_DEV, "down", "--service", service]
        alices_shell += ["--kubeconfig", str(alice.workstation_kubeconfig)]
        down = subprocess.run(
            lab_node.workstation_argv(alices_shell),
            env={**os.environ, "WEBHOOK_DEV_STATE_DIR": str(alice.state_dir)},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert down.returncode == 0, down.stdout + down.stderr
        remaining = [entry["name"] for entry in admin.get(config_path)["webhooks"]]
        assert remaining == [copies[1], before["webhooks"][0]["name"]], remaining

        # bob's shadow goes on; production still decides in alice's namespace.
        pod = _create_pod_in(view, namespaces["a"], "after-down-a")
        assert _sidecar_image(pod) == NGINX_IMAGE
        mark = up_b.mark()
        pod = _create_pod_in(view, namespaces["b"], "after-down-b")
        assert _sidecar_image(pod) == NGINX_IMAGE
        up_b.wait_for("/after-down-b  CREATE  allowed.*≠ production", after=mark, timeout=20)
        assert up_b.stop(signal.SIGTERM) == 0, up_b.output
        assert "shadow: " in up_b.output
    assert _content(admin.get(config_path)) == before


PRODUCTION_PORT, LOCAL_PORT = 18471, 18472


def test_calibrate_reports_a_nondeterministic_production_field_as_noise(
    lab: Lab,
    lab_namespace: str,
    state_dir: Path,
    tmp_path: Path,
    background: Callable[..., RunningProcess],
) -> None:
    """Production (a ``url:`` webhook on the master) labels each call with a value of its
    own; the local code labels ``local``. Asked twice, production disagrees with itself on
    exactly that label: the difference is noise, not a difference."""
    ca = certs.new_ca("team CA")
    tls = {}
    for name, address in (("production", lab.master_ip), ("local", "127.0.0.1")):
        issued = certs.new_serving_cert(ca, ip_addresses=[address])
        cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
        cert.write_bytes(issued.cert_pem)
        key.write_bytes(issued.key_pem)
        tls[name] = WebhookTLS(ca.cert_pem, cert, key)
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    background(
        lab.master_argv(
            webhook_server_argv(tls["production"], lab.master_ip, PRODUCTION_PORT, "random")
        ),
        ready_line="listening",
    )
    background(
        lab.workstation_argv(webhook_server_argv(tls["local"], "127.0.0.1", LOCAL_PORT, "local")),
        ready_line="listening",
    )
    admin = Cluster.connect(kubeconfig=str(lab.host_kubeconfig))
    config = f"noisy-{lab_namespace}"
    admin.create(
        f"{WEBHOOK_API}/mutatingwebhookconfigurations",
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": config},
            "webhooks": [
                {
                    "name": "noisy.webhook-dev.io",
                    "clientConfig": {
                        "url": f"https://{lab.master_ip}:{PRODUCTION_PORT}/mutate",
                        "caBundle": base64.b64encode(ca.cert_pem).decode(),
                    },
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ],
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": lab_namespace}
                    },
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                }
            ],
        },
    )
    try:
        with stopped_at_exit() as processes:
            argv = ["up", "--webhook", config, "--ssh", lab.ssh_destination, "--shadow"]
            argv += ["--calibrate", "--upstream", f"https://127.0.0.1:{LOCAL_PORT}"]
            argv += ["--upstream-ca", str(ca_file), "--no-record", "--no-inspector"]
            env = {"WEBHOOK_DEV_STATE_DIR": str(state_dir)}
            up = processes.add(up_process(lab, argv, env, REPO))
            up.wait_for("ready: kube-apiserver")
            view = ClusterView(admin)
            for index in range(3):
                pod = view.create_pod(lab_namespace, f"noisy-{index}", dry_run=True)
                label = pod["metadata"]["labels"]["webhook-dev.io/mutated-by"]
                assert label != "local", "production decides"
                up.wait_for(
                    f"Pod {lab_namespace}/noisy-{index}  CREATE  allowed.*"
                    r"= production  \(noise: object\)",
                    timeout=20,
                )
            assert up.stop(signal.SIGTERM) == 0, up.output
            summary = up.wait_for("^shadow: ")
            found = re.search(r"shadow: (\d+) compared, 0 differed \((\d+) noisy\)", summary)
            assert found is not None and int(found.group(2)) >= 3, summary
            print(summary)
    finally:
        admin.delete(f"{WEBHOOK_API}/mutatingwebhookconfigurations/{config}")


WEBSITE_API = "/apis/samples.webhook-dev.io"


def test_production_converts_and_the_local_conversion_is_compared_per_object(
    lab_node: Lab, state_dir: Path, tmp_path: Path
) -> None:
    """The website sample in the cluster converts; the local code (one edit) is compared on
    every stored object, and only the edited conversion differs. Once the edit is undone
    on disk, the reload sweeps again and nothing differs."""
    deployed = lab_node.deploy_sample("website")
    admin = Cluster.connect(kubeconfig=str(lab_node.host_kubeconfig))
    websites = f"{WEBSITE_API}/v1/namespaces/websites/websites"
    names = ["same-site", "differs-site"]
    project = sample_project(tmp_path)
    candidate = project / "website_candidate.py"
    shutil.copy(REPO / "tests" / "lab" / "website_candidate.py", candidate)
    try:
        for name in names:
            admin.create(
                websites,
                {
                    "apiVersion": "samples.webhook-dev.io/v1",
                    "kind": "Website",
                    "metadata": {"name": name},
                    "spec": {"host": f"{name}.example.com", "port": 8080},
                },
            )
        recording = tmp_path / "conversions.jsonl"
        with stopped_at_exit() as processes:
            argv = ["up", "--service", f"{deployed.namespace}/{deployed.service}"]
            argv += ["--ssh", lab_node.ssh_destination, "--shadow"]
            argv += ["--app", "website_candidate", "--record", str(recording)]
            argv += ["--no-inspector"]
            env = {"WEBHOOK_DEV_STATE_DIR": str(state_dir)}
            up = processes.add(up_process(lab_node, argv, env, project))
            sweep = r"conversion of websites\.samples\.webhook-dev\.io: "
            line = up.wait_for(sweep, timeout=60)
            assert "2 stored objects to v2: 2 compared, 1 differed" in line, up.output
            # Production still converts every read.
            read = admin.get(f"{WEBSITE_API}/v2/namespaces/websites/websites/differs-site")
            assert read["spec"] == {"address": "differs-site.example.com:8080"}

            # The developer undoes the edit: the reload sweeps every stored object again.
            mark = up.mark()
            undone = candidate.read_text().replace('name.startswith("differs")', "False")
            assert undone != candidate.read_text()
            candidate.write_text(undone)
            line = up.wait_for(sweep, after=mark, timeout=60)
            assert "2 stored objects to v2: 2 compared, 0 differed" in line, up.output
            assert up.stop(signal.SIGTERM) == 0, up.output
        sweeps: dict[str, list[Any]] = {name: [] for name in names}
        for exchange in read_recording(recording)[0]:
            if exchange.request.get("objects"):
                sweeps[exchange.request["objects"][0]["metadata"]["name"]].append(exchange)
        for name, exchanges in sweeps.items():
            assert len(exchanges) == 2, (name, len(exchanges))
            first, after_edit = (exchange.shadow for exchange in exchanges)
            assert first is not None and first.control is not None
            assert first.differed is (name == "differs-site"), first.to_json()
            if first.differed:
                assert first.to_json()["differed"] == ["convertedObjects[0]"]
            assert after_edit is not None and not after_edit.differed, after_edit.to_json()
    finally:
        for name in names:
            admin.delete(f"{websites}/{name}")
        lab_node.delete_sample(deployed)
