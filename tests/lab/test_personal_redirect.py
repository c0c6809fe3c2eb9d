"""Personal redirects on a shared cluster, against the lab's real kube-apiserver and sshd.

Two developers, alice and bob, are two Kubernetes identities (client certificates signed
by the lab's CA, bound to cluster-admin by a ClusterRoleBinding the test makes), each
running ``up`` on their own "laptop" (the workstation namespace, own state directory,
own kubeconfig). The team's webhook is a separate process on the master that labels what
it admits ``webhook-dev.io/mutated-by: team``; the developers' local code is the sample
sidecar injector, and each ``up`` prints a line for every call it receives.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness import RunningProcess, stopped_at_exit
from tests.lab.conftest import (
    LABEL,
    WebhookTLS,
    route_service_to,
    wait_for_proxy,
    webhook_server_argv,
)
from tests.lab.redirect_fixtures import REPO, container_names, up_process
from webhook_dev.kube.cluster import Cluster, ClusterError
from webhook_dev.lab import Lab
from webhook_dev.tls import certs

pytestmark = pytest.mark.e2e

TEAM_PORT = 18460
WEBHOOK_API = "/apis/admissionregistration.k8s.io/v1"
MUTATING = f"{WEBHOOK_API}/mutatingwebhookconfigurations"
APP = "sample_webhook.sidecar_injector"
Json = dict[str, Any]


@dataclass
class Developer:
    """One person on the team: a Kubernetes user with a kubeconfig for each side."""

    name: str
    workstation_kubeconfig: Path  # server = the master's IP, for `up` on the laptop
    host_kubeconfig: Path  # server = the master's host IP, for the test process
    state_dir: Path

    def cluster(self) -> Cluster:
        return Cluster.connect(kubeconfig=str(self.host_kubeconfig))


@dataclass
class Team:
    """The shared cluster: the team's webhook and the namespaces developers work in."""

    service: str  # NS/NAME of the team webhook's Service
    config: str  # its MutatingWebhookConfiguration
    namespaces: dict[str, str]  # "a" -> real namespace name
    admin: Cluster

    @property
    def config_path(self) -> str:
        return f"{MUTATING}/{self.config}"


def _kubeconfig(lab: Lab, user: str, issued: certs.Issued, source: Path, target: Path) -> None:
    document = yaml.safe_load(source.read_text())
    document["users"] = [
        {
            "name": user,
            "user": {
                "client-certificate-data": base64.b64encode(issued.cert_pem).decode(),
                "client-key-data": base64.b64encode(issued.key_pem).decode(),
            },
        }
    ]
    for context in document["contexts"]:
        context["context"]["user"] = user
    target.write_text(yaml.safe_dump(document))
    target.chmod(0o600)


@pytest.fixture
def developers(lab: Lab, tmp_path: Path) -> Iterator[Callable[[str], Developer]]:
    """Make a developer: a client certificate from the lab's CA, cluster-admin by RBAC."""
    yield from developers_on(lab, tmp_path)


def developers_on(lab: Lab, tmp_path: Path) -> Iterator[Callable[[str], Developer]]:
    """The ``developers`` fixture's body, for any lab (shadow mode's test uses the node's);
    their ClusterRoleBindings are deleted when the generator ends."""
    admin = Cluster.connect(kubeconfig=str(lab.host_kubeconfig))
    ca = certs.Issued(lab.layout.ca_cert.read_bytes(), lab.layout.ca_key.read_bytes())
    bindings: list[str] = []

    def make(name: str) -> Developer:
        issued = certs.new_client_cert(ca, common_name=name, organizations=("webhook-devs",))
        folder = tmp_path / name
        folder.mkdir()
        (folder / "state").mkdir(mode=0o700)
        developer = Developer(
            name, folder / "kubeconfig", folder / "host.kubeconfig", folder / "state"
        )
        _kubeconfig(lab, name, issued, lab.kubeconfig, developer.workstation_kubeconfig)
        _kubeconfig(lab, name, issued, lab.host_kubeconfig, developer.host_kubeconfig)
        binding = f"webhook-dev-test-{name}-{tmp_path.name[-12:]}".lower()
        admin.create(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": binding},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}
                ],
            },
        )
        bindings.append(binding)
        return developer

    yield make
    for binding in bindings:
        admin.delete(f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{binding}")


def make_namespace(admin: Cluster, name: str, labels: dict[str, str] | None = None) -> None:
    """Create namespace ``name`` and wait for its default ServiceAccount (Pods need it)."""
    admin.create(
        "/api/v1/namespaces",
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}},
        },
    )
    deadline = time.monotonic() + 30
    while admin.get_or_none(f"/api/v1/namespaces/{name}/serviceaccounts/default") is None:
        assert time.monotonic() < deadline, f"no default ServiceAccount in {name}"
        time.sleep(0.2)


@pytest.fixture
def team(
    lab: Lab,
    lab_api_client: Any,
    lab_namespace: str,
    webhook_tls: WebhookTLS,
    background: Callable[..., Any],
) -> Iterator[Team]:
    """The team's webhook (a process on the master behind Service ``webhook``), called
    with failurePolicy Fail for Pods in three namespaces a, b and c."""
    admin = Cluster.connect(kubeconfig=str(lab.host_kubeconfig))
    background(
        lab.master_argv(webhook_server_argv(webhook_tls, lab.master_ip, TEAM_PORT, "team")),
        ready_line="listening",
    )
    route_service_to(lab_api_client, lab_namespace, lab.master_ip, TEAM_PORT)
    wait_for_proxy(lab, lab_namespace, f"{lab.master_ip}:{TEAM_PORT}")
    namespaces = {short: f"{lab_namespace}-{short}" for short in ("a", "b", "c")}
    for name in namespaces.values():
        make_namespace(admin, name)
    config = f"team-{lab_namespace}"
    admin.create(
        MUTATING,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": config},
            "webhooks": [
                {
                    "name": "pods.team.example.com",
                    "clientConfig": {
                        "service": {
                            "namespace": lab_namespace,
                            "name": "webhook",
                            "path": "/mutate",
                            "port": 443,
                        },
                        "caBundle": base64.b64encode(webhook_tls.ca_pem).decode(),
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
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/metadata.name",
                                "operator": "In",
                                "values": sorted(namespaces.values()),
                            }
                        ]
                    },
                    "failurePolicy": "Fail",
                    "timeoutSeconds": 10,
                    "reinvocationPolicy": "IfNeeded",
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                }
            ],
        },
    )
    try:
        yield Team(f"{lab_namespace}/webhook", config, namespaces, admin)
    finally:
        admin.delete(f"{MUTATING}/{config}")
        for name in namespaces.values():
            admin.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def start_personal(lab: Lab) -> Iterator[Callable[..., RunningProcess]]:
    """``up --service ... --only-...`` on a developer's laptop; all stopped at the end."""
    with stopped_at_exit() as processes:
        yield lambda developer, team, *scope: processes.add(
            _personal_up(lab, developer, team, *scope)
        )


def _personal_up(lab: Lab, developer: Developer, team: Team, *scope: str) -> RunningProcess:
    """``up --service ... --only-...`` as one developer, on their laptop."""
    argv = [
        "up",
        "--service",
        team.service,
        *scope,
        "--ssh",
        lab.ssh_destination,
        "--kubeconfig",
        str(developer.workstation_kubeconfig),
        "--app",
        APP,
        "--no-record",
    ]
    env = {"WEBHOOK_DEV_STATE_DIR": str(developer.state_dir), "WEBHOOK_DEV_LEASE_SECONDS": "6"}
    return up_process(lab, argv, env, REPO)


def _webhook_dev(lab: Lab, developer: Developer, *argv: str) -> subprocess.CompletedProcess[str]:
    """A one-shot command on the developer's laptop (another shell)."""
    command = lab.workstation_argv(
        [
            sys.executable,
            "-m",
            "webhook_dev",
            *argv,
            "--kubeconfig",
            str(developer.workstation_kubeconfig),
        ]
    )
    env = {
        "WEBHOOK_DEV_STATE_DIR": str(developer.state_dir),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(Path.home()),
    }
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


def _create_pod(cluster: Cluster, namespace: str, name: str) -> Json:
    return cluster.create(
        f"/api/v1/namespaces/{namespace}/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
        },
    )


def _by_laptop(pod: Json) -> bool:
    return "nginx-sidecar" in container_names(pod)


def _by_team(pod: Json) -> bool:
    return (pod["metadata"].get("labels") or {}).get(LABEL) == "team"


def _content(obj: Json) -> Json:
    clean = json.loads(json.dumps(obj))
    for key in ("resourceVersion", "managedFields", "generation"):
        clean["metadata"].pop(key, None)
    return dict(clean)


def _saw(up: RunningProcess, namespace: str, pod: str) -> bool:
    return f"Pod {namespace}/{pod}  CREATE" in up.output


def test_two_developers_hold_disjoint_namespaces_and_kill_9_then_down_restores_only_one(
    lab: Lab,
    team: Team,
    developers: Callable[[str], Developer],
    start_personal: Callable[..., RunningProcess],
) -> None:
    alice, bob = developers("alice"), developers("bob")
    a, b, c = team.namespaces["a"], team.namespaces["b"], team.namespaces["c"]
    before = _content(team.admin.get(team.config_path))

    up_a = start_personal(alice, team, "--only-namespace", a)
    up_a.wait_for(re.escape("ready: kube-apiserver"))
    up_b = start_personal(bob, team, "--only-namespace", b)
    up_b.wait_for(re.escape("ready: kube-apiserver"))

    # An overlapping scope is refused, naming its holder; nothing changes.
    during = _content(team.admin.get(team.config_path))
    refused = _webhook_dev(
        lab, bob, "up", "--service", team.service, "--only-namespace", a,
        "--only-namespace", c, "--ssh", lab.ssh_destination, "--app", APP, "--no-record",
    )  # fmt: skip
    assert refused.returncode != 0
    assert "held by alice (" in refused.stderr + refused.stdout
    assert _content(team.admin.get(team.config_path)) == during

    # The Service and its Endpoints are untouched: the team's Pods keep serving the rest.
    pod_a = _create_pod(team.admin, a, "in-a")
    pod_b = _create_pod(team.admin, b, "in-b")
    pod_c = _create_pod(team.admin, c, "in-c")
    assert _by_laptop(pod_a) and not _by_team(pod_a)
    assert _by_laptop(pod_b) and not _by_team(pod_b)
    assert _by_team(pod_c) and not _by_laptop(pod_c)
    up_a.wait_for(re.escape(f"Pod {a}/in-a  CREATE"))
    up_b.wait_for(re.escape(f"Pod {b}/in-b  CREATE"))
    assert not _saw(up_a, b, "in-b") and not _saw(up_a, c, "in-c")
    assert not _saw(up_b, a, "in-a") and not _saw(up_b, c, "in-c")
    copies = {item["metadata"]["name"] for item in team.admin.list(MUTATING)}
    assert {f"webhook-dev.alice.{team.config}", f"webhook-dev.bob.{team.config}"} <= copies

    # A teammate edits the original during the session: a rule, and the timeout.
    def edit(config: Json) -> Json:
        entry = config["webhooks"][0]
        entry["rules"].append({**entry["rules"][0], "operations": ["UPDATE"]})
        entry["timeoutSeconds"] = 7
        return config

    team.admin.update(team.config_path, edit)

    # alice's laptop dies; from another shell she takes her redirect down.
    up_a.stop(signal.SIGKILL)
    down = _webhook_dev(lab, alice, "down", "--service", team.service)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "personal redirect of bob" in down.stdout + down.stderr  # named, left alone

    after = _content(team.admin.get(team.config_path))
    expected = edit(json.loads(json.dumps(before)))
    bob_exclusion = after["webhooks"][0]["namespaceSelector"]["matchExpressions"][-1]
    assert bob_exclusion["operator"] == "NotIn" and bob_exclusion["values"][0] == b
    expected["webhooks"][0]["namespaceSelector"]["matchExpressions"].append(bob_exclusion)
    assert after == expected  # ours gone, the teammate's edit and bob's exclusion kept
    copies = {item["metadata"]["name"] for item in team.admin.list(MUTATING)}
    assert f"webhook-dev.alice.{team.config}" not in copies
    assert f"webhook-dev.bob.{team.config}" in copies

    # bob's redirect keeps working; namespace a is the team's again.
    pod_b2 = _create_pod(team.admin, b, "in-b-2")
    pod_a2 = _create_pod(team.admin, a, "in-a-2")
    assert _by_laptop(pod_b2) and _by_team(pod_a2) and not _by_laptop(pod_a2)
    up_b.wait_for(re.escape(f"Pod {b}/in-b-2  CREATE"))

    assert up_b.stop(signal.SIGTERM) == 0, up_b.output
    assert _content(team.admin.get(team.config_path)) == edit(json.loads(json.dumps(before)))
    records = team.admin.list(
        f"{WEBHOOK_API}/validatingwebhookconfigurations",
        label_selector="app.kubernetes.io/managed-by=webhook-dev",
    )
    assert not [r for r in records if team.service.replace("/", ".") in r["metadata"]["name"]]


def test_only_user_sends_only_that_users_requests_to_the_laptop(
    lab: Lab,
    team: Team,
    developers: Callable[[str], Developer],
    start_personal: Callable[..., RunningProcess],
) -> None:
    alice = developers("alice")
    a = team.namespaces["a"]
    before = _content(team.admin.get(team.config_path))

    up_a = start_personal(alice, team, "--only-user", "alice")
    up_a.wait_for(re.escape("ready: kube-apiserver"))

    mine = _create_pod(alice.cluster(), a, "by-alice")
    theirs = _create_pod(team.admin, a, "by-admin")
    assert _by_laptop(mine) and not _by_team(mine)
    assert _by_team(theirs) and not _by_laptop(theirs)
    up_a.wait_for(re.escape(f"Pod {a}/by-alice  CREATE"))
    assert not _saw(up_a, a, "by-admin")

    assert up_a.stop(signal.SIGTERM) == 0, up_a.output
    assert _content(team.admin.get(team.config_path)) == before


def test_up_refuses_a_scope_naming_a_namespace_that_does_not_exist_and_changes_nothing(
    lab: Lab,
    team: Team,
    developers: Callable[[str], Developer],
) -> None:
    alice = developers("alice")
    result = _webhook_dev(
        lab, alice, "up", "--service", team.service, "--only-namespace", "no-such-namespace",
        "--ssh", lab.ssh_destination, "--app", APP, "--no-record",
    )  # fmt: skip
    assert result.returncode != 0
    assert "--only-namespace no-such-namespace: no such namespace" in result.stderr
    with pytest.raises(ClusterError):
        team.admin.get(f"{MUTATING}/webhook-dev.alice.{team.config}")
