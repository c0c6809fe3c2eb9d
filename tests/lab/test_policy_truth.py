"""``replay --policy`` against the truth: the lab's own kube-apiserver enforcing the same
ValidatingAdmissionPolicy and MutatingAdmissionPolicy.

1. The policies (tests/policies/lab_configmaps.yaml) are installed in the lab's apiserver
   and decide a set of dry-run ConfigMap creates: allowed, denied, warned, mutated, left
   alone. What the apiserver answered is kept: the code and message of a denial, the
   ``Warning`` headers, the object it would store.
2. Their bindings are removed, and the webhook they replace (tests/lab/policy_webhook.py,
   a mutating and a validating configuration calling one Service) answers the same
   requests through ``up``, which records them (with the Namespace's labels the bindings'
   ``namespaceSelector`` reads).
   ``up --policy`` decides each call live too, and marks and records the differences.
3. ``replay --policy`` with the same policies must decide each recorded request exactly as
   the apiserver did in step 1, and fail exactly the requests where the webhook was made
   to differ from the policy — the same ones ``up --policy`` recorded.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.harness import REPO, stopped_at_exit
from tests.lab.redirect_fixtures import ClusterView, up_process, wait_for_controller_slice
from tests.polling import wait_until
from webhook_dev.kube.cluster import Cluster
from webhook_dev.lab import Lab

pytestmark = pytest.mark.e2e

POLICIES = REPO / "tests" / "policies" / "lab_configmaps.yaml"
REGISTRATION = "/apis/admissionregistration.k8s.io/v1"
SERVICE = "policy-webhook"

# name -> (labels, data). The webhook differs from the policy on pl-drift (mutating),
# pl-lenient and pl-quiet (validating); it agrees everywhere else.
REQUESTS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "pl-plain": ({"team": "a"}, {"key": "value"}),
    "pl-warned": ({"app": "x"}, {"key": "value"}),
    "pl-denied": ({"team": "a"}, {"forbidden": "yes"}),
    "pl-skipped": ({"team": "a", "skip-mutation": "true"}, {}),
    "pl-drift": ({"team": "a"}, {}),
    "pl-lenient": ({"team": "a"}, {"forbidden": "yes"}),
    "pl-quiet": ({"app": "x"}, {}),
    # lab-libraries: every library check passes, then each fails once.
    "pl-libs-ok": (
        {"team": "a"},
        {
            "mem": "512Mi",
            "site": "https://site.example/x",
            "ip": "10.1.2.3",
            "dns": "ok-name",
            "code": "ab42cd",
        },
    ),
    "pl-libs-mem": ({"team": "a"}, {"mem": "2Gi"}),
    "pl-libs-site": ({"team": "a"}, {"site": "http://site.example"}),
    "pl-libs-ip": ({"team": "a"}, {"ip": "11.0.0.1"}),
    "pl-libs-dns": ({"team": "a"}, {"dns": "Bad_Name"}),
    "pl-libs-code": ({"team": "a"}, {"code": "ab7cd"}),
}
DIFFERING = {("mutating", "pl-drift"), ("validating", "pl-lenient"), ("validating", "pl-quiet")}


def configmap(namespace: str, name: str) -> dict[str, Any]:
    labels, data = REQUESTS[name]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": data,
    }


def dry_run_create(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """What the apiserver answers to a dry-run create: code, body, ``Warning`` texts."""
    api = cluster.api_client
    method, url, headers, body, post = api.param_serialize(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        query_params=[("dryRun", "All")],
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body=configmap(namespace, name),
        auth_settings=["BearerToken"],
    )
    try:
        response = api.call_api(method, url, headers, body, post, _request_timeout=30)
        status, data, got = response.status, response.read(), response.getheaders()
    except ApiException as error:
        status, data, got = error.status, error.body, error.headers or {}
    warnings = [_warning_text(value) for value in _header_values(got, "Warning")]
    return {"status": status, "body": json.loads(data), "warnings": warnings}


def _header_values(headers: Any, name: str) -> list[str]:
    if hasattr(headers, "getlist"):
        return list(headers.getlist(name))
    value = headers.get(name)
    return [value] if value else []


def _warning_text(header: str) -> str:
    """``299 - "text"`` → ``text`` (RFC 7234's warn-code, agent and quoted text)."""
    text = header.split(" ", 2)[2]
    return json.loads(text) if text.startswith('"') else text


def kept(obj: dict[str, Any]) -> dict[str, Any]:
    """What the policies decide about an object: its labels, annotations and data."""
    metadata = obj.get("metadata") or {}
    return {
        "labels": metadata.get("labels") or {},
        "annotations": metadata.get("annotations") or {},
        "data": obj.get("data") or {},
    }


def collection(kind: str) -> str:
    """``ValidatingAdmissionPolicy`` → its REST collection (``...admissionpolicies``)."""
    lowered = kind.lower()
    plural = lowered[:-1] + "ies" if lowered.endswith("y") else lowered + "s"
    return f"{REGISTRATION}/{plural}"


def install(cluster: Cluster, documents: list[dict[str, Any]]) -> None:
    for document in documents:
        cluster.create(collection(document["kind"]), document)


def delete(cluster: Cluster, documents: list[dict[str, Any]]) -> None:
    for document in documents:
        cluster.delete(f"{collection(document['kind'])}/{document['metadata']['name']}")


def webhook_configurations(namespace: str) -> list[tuple[str, dict[str, Any]]]:
    """A mutating and a validating configuration, both calling Service policy-webhook."""
    configs = []
    for kind, path in (("Mutating", "/mutate"), ("Validating", "/validate")):
        configs.append(
            (
                f"{REGISTRATION}/{kind.lower()}webhookconfigurations",
                {
                    "apiVersion": "admissionregistration.k8s.io/v1",
                    "kind": f"{kind}WebhookConfiguration",
                    "metadata": {"name": f"policy-lab-{namespace}"},
                    "webhooks": [
                        {
                            "name": f"{kind.lower()}.policy-lab.webhook-dev.io",
                            "clientConfig": {
                                "service": {
                                    "namespace": namespace,
                                    "name": SERVICE,
                                    "path": path,
                                    "port": 443,
                                }
                            },
                            "rules": [
                                {
                                    "apiGroups": [""],
                                    "apiVersions": ["v1"],
                                    "operations": ["CREATE"],
                                    "resources": ["configmaps"],
                                }
                            ],
                            "namespaceSelector": {"matchLabels": {"policy-lab": "on"}},
                            "failurePolicy": "Fail",
                            "timeoutSeconds": 10,
                            "sideEffects": "None",
                            "admissionReviewVersions": ["v1"],
                        }
                    ],
                },
            )
        )
    return configs


@pytest.fixture
def policy_namespace(cluster_view: ClusterView, lab_namespace: str) -> str:
    cluster_view.cluster.update(
        f"/api/v1/namespaces/{lab_namespace}",
        lambda ns: {
            **ns,
            "metadata": {
                **ns["metadata"],
                "labels": {**(ns["metadata"].get("labels") or {}), "policy-lab": "on"},
            },
        },
    )
    return lab_namespace


@pytest.fixture
def policies(cluster_view: ClusterView) -> Iterator[list[dict[str, Any]]]:
    documents = [d for d in yaml.safe_load_all(POLICIES.read_text()) if d]
    try:
        yield documents
    finally:
        delete(cluster_view.cluster, [d for d in documents if d["kind"].endswith("Binding")])
        delete(cluster_view.cluster, [d for d in documents if not d["kind"].endswith("Binding")])


def enforced(cluster: Cluster, namespace: str) -> bool:
    """The apiserver's policy informers have caught up: it denies and mutates."""
    denied = dry_run_create(cluster, namespace, "pl-denied")["status"] == 403
    plain = dry_run_create(cluster, namespace, "pl-plain")
    return denied and plain["body"]["metadata"]["labels"].get("owner") == "policy"


def released(cluster: Cluster, namespace: str) -> bool:
    """No binding acts any more: a forbidden key is allowed, nothing is mutated."""
    denied = dry_run_create(cluster, namespace, "pl-denied")
    return denied["status"] == 201 and "owner" not in denied["body"]["metadata"]["labels"]


def test_replay_and_up_policy_decide_each_request_as_the_lab_apiserver_did(
    lab: Lab,
    state_dir: Path,
    tmp_path: Path,
    cluster_view: ClusterView,
    policy_namespace: str,
    policies: list[dict[str, Any]],
) -> None:
    cluster, namespace = cluster_view.cluster, policy_namespace

    # 1. The truth: the apiserver enforcing the policies.
    install(cluster, [d for d in policies if not d["kind"].endswith("Binding")])
    install(cluster, [d for d in policies if d["kind"].endswith("Binding")])
    wait_until(lambda: enforced(cluster, namespace), timeout=30, what="the policies enforced")
    truth = {name: dry_run_create(cluster, namespace, name) for name in REQUESTS}
    assert truth["pl-denied"]["status"] == 403
    assert truth["pl-warned"]["warnings"] and not truth["pl-plain"]["warnings"]
    assert kept(truth["pl-plain"]["body"])["labels"]["owner"] == "policy"
    assert truth["pl-libs-ok"]["status"] == 201
    for name in REQUESTS:  # each library check denies its own request
        if name.startswith("pl-libs-") and name != "pl-libs-ok":
            assert truth[name]["status"] == 403, (name, truth[name])
            assert "lab-libraries" in truth[name]["body"]["message"], truth[name]
    assert "owner" not in kept(truth["pl-skipped"]["body"])["labels"]

    # 2. The webhook instead, recorded by up.
    delete(cluster, [d for d in policies if d["kind"].endswith("Binding")])
    wait_until(lambda: released(cluster, namespace), timeout=30, what="the bindings gone")
    cluster.create(
        f"/api/v1/namespaces/{namespace}/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": namespace},
            "spec": {
                "selector": {"app": SERVICE},
                "ports": [{"name": "https", "port": 443, "targetPort": 8443}],
            },
        },
    )
    wait_for_controller_slice(cluster, namespace, SERVICE)
    configs = webhook_configurations(namespace)
    recording = tmp_path / "calls.jsonl"
    try:
        for collection, config in configs:
            cluster.create(collection, config)
        with stopped_at_exit() as processes:
            up = processes.add(
                up_process(
                    lab,
                    [
                        "up",
                        "--service",
                        f"{namespace}/{SERVICE}",
                        "--ssh",
                        lab.ssh_destination,
                        "--app",
                        "tests.lab.policy_webhook",
                        "--record",
                        str(recording),
                        "--no-inspector",
                        "--policy",
                        str(POLICIES),
                    ],
                    {"WEBHOOK_DEV_STATE_DIR": str(state_dir)},
                    REPO,
                )
            )
            up.wait_for("ready: kube-apiserver", timeout=120)
            through_webhook = {name: dry_run_create(cluster, namespace, name) for name in REQUESTS}
            # The first mutation builds the evaluator's schemas: its marks may come later.
            wait_until(
                lambda: up.output.count("≠ policy differs") == len(DIFFERING),
                timeout=60,
                what="up --policy marked the calls where the policy differs",
            )
            assert up.stop(signal.SIGTERM) == 0, up.output
    finally:
        for collection, config in configs:
            cluster.delete(f"{collection}/{config['metadata']['name']}")
    assert through_webhook["pl-lenient"]["status"] == 201  # the webhook's own decisions
    assert kept(through_webhook["pl-drift"]["body"])["labels"]["owner"] == "webhook"

    # 3. replay --policy: the apiserver's decision for each request, the webhook's
    # differences and nothing else.
    names, live = {}, {}
    for line in recording.read_text().splitlines():
        exchange = json.loads(line)
        request = exchange["request"]["request"]
        if request["name"].startswith("pl-"):
            assert exchange["namespace"]["labels"]["policy-lab"] == "on"
            side = "mutating" if exchange["path"].startswith("/mutate") else "validating"
            names[exchange["id"]] = (side, request["name"])
            live[(side, request["name"])] = exchange["policy"]["outcome"]
    assert len(names) == 2 * len(REQUESTS), names
    replayed = subprocess.run(
        [
            sys.executable,
            "-m",
            "webhook_dev",
            "replay",
            str(recording),
            "--policy",
            str(POLICIES),
            "--where",
            "name:*/pl-*",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr
    report = json.loads(replayed.stdout)
    results = {names[r["id"]]: r for r in report["results"]}
    assert set(results) == set(names.values())
    assert {key for key, r in results.items() if not r["passed"]} == DIFFERING
    agreeing = 2 * len(REQUESTS) - len(DIFFERING)
    assert (report["passed"], report["failed"], report["not_compared"]) == (
        agreeing,
        len(DIFFERING),
        0,
    )
    # What up --policy recorded live is what replay --policy finds afterwards.
    assert {key for key, outcome in live.items() if outcome != "agrees"} == DIFFERING
    assert set(live.values()) == {"agrees", "differs"}
    for (side, name), result in results.items():
        decision, answer = result["policy"], truth[name]
        if side == "validating":
            if answer["status"] == 201:
                assert decision["allowed"], (name, decision)
                assert decision["warningTexts"] == answer["warnings"], name
            else:
                assert not decision["allowed"], (name, decision)
                assert decision["code"] == answer["status"] == answer["body"]["code"]
                assert decision["message"] == answer["body"]["message"]
        elif answer["status"] == 201:
            assert decision["allowed"], (name, decision)
            assert kept(decision["object"]) == kept(answer["body"]), name
    print(
        f"replay --policy: {report['passed']} passed, {report['failed']} failed, "
        f"{report['not_compared']} not compared; "
        f"all {len(results)} decisions as the lab's kube-apiserver made them"
    )
