"""``webhook-dev replay --policy``: recorded answers against kube-apiserver's own policy
plugins (our Go evaluator), differences and what a recording lacks."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_webhook_dev

POLICIES = Path(__file__).parent.parent / "policies" / "configmaps.yaml"


@pytest.fixture(scope="module", autouse=True)
def evaluator() -> Path:
    """Built once (``webhook-dev lab build`` has usually built it already)."""
    from webhook_dev.lab import policy_evaluator

    return policy_evaluator.resolve(allow_build=True)


def configmap(name: str, labels: dict[str, str], data: dict[str, str], uid: str) -> dict[str, Any]:
    return {
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "resource": {"group": "", "version": "v1", "resource": "configmaps"},
        "namespace": "default",
        "name": name,
        "operation": "CREATE",
        "userInfo": {"username": "alice"},
        "object": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "data": data,
        },
    }


def line(
    number: int, path: str, request: dict[str, Any], response: dict[str, Any], **extra: Any
) -> str:
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
    return json.dumps(
        {
            "version": 1,
            "id": f"{number:016x}",
            "time": "2026-01-01T00:00:00+00:00",
            "path": path,
            "http_status": 200,
            "duration_ms": 1.0,
            "upstream_ms": 1.0,
            "generation": 1,
            "request": review | {"request": request},
            "response": review | {"response": {"uid": request["uid"]} | response},
            "flags": [],
            "error": None,
        }
        | extra
    )


def patch(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode()}


def write(tmp_path: Path, *lines: str) -> Path:
    recording = tmp_path / "calls.jsonl"
    recording.write_text("\n".join(lines) + "\n")
    return recording


def test_replay_policy_reports_exactly_the_requests_where_webhook_and_policy_differ(tmp_path):
    owner = {"op": "add", "path": "/metadata/labels/owner", "value": "webhook-dev"}
    recording = write(
        tmp_path,
        line(1, "/validate", configmap("policy-ok", {"team": "a"}, {}, "u1"), {"allowed": True}),
        line(
            2,
            "/validate",
            configmap("policy-noteam", {}, {}, "u2"),
            {
                "allowed": False,
                "status": {"code": 422, "message": "a ConfigMap needs a team label"},
            },
        ),
        # The webhook let a password through: the policy denies it.
        line(
            3,
            "/validate",
            configmap("policy-pw", {"team": "a"}, {"password": "x"}, "u3"),
            {"allowed": True},
        ),
        line(
            4,
            "/validate",
            configmap("policy-big", {"team": "a"}, {"a": "1", "b": "2", "c": "3"}, "u4"),
            {"allowed": True, "warnings": ["more than 2 keys"]},
        ),
        line(
            5,
            "/mutate",
            configmap("policy-m1", {"team": "a"}, {}, "u5"),
            {"allowed": True} | patch(owner),
        ),
        # The webhook forgot the label: the objects differ.
        line(6, "/mutate", configmap("policy-m2", {"team": "a"}, {}, "u6"), {"allowed": True}),
    )
    result = run_webhook_dev("replay", str(recording), "--policy", str(POLICIES))
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert f"ok    {recording}:1  ConfigMap default/policy-ok CREATE (uid u1)" in out
    assert f"ok    {recording}:2" in out
    assert f"FAIL  {recording}:3" in out
    assert "  allowed: webhook true, policy false" in out
    assert "  policy: denied (403 Forbidden): ConfigMap policy-pw holds a password" in out
    assert f"ok    {recording}:4" in out
    assert f"ok    {recording}:5" in out
    assert f"FAIL  {recording}:6" in out
    assert '+      "owner": "webhook-dev"' in out
    assert out.rstrip().endswith("4 passed, 2 failed")


def test_replay_policy_json_carries_the_apiservers_own_words(tmp_path):
    recording = write(
        tmp_path,
        line(1, "/validate", configmap("policy-noteam", {}, {}, "u1"), {"allowed": True}),
    )
    result = run_webhook_dev("replay", str(recording), "--policy", str(POLICIES), "--json")
    report = json.loads(result.stdout)
    policy = report["results"][0]["policy"]
    assert policy["message"] == (
        'configmaps "policy-noteam" is forbidden: ValidatingAdmissionPolicy '
        "'configmap-rules' with binding 'configmap-rules' denied request: "
        "a ConfigMap needs a team label"
    )
    assert (policy["code"], policy["reason"]) == (422, "Invalid")
    assert report["failed"] == 1


def test_a_policy_the_apiserver_would_refuse_is_refused_before_anything_runs(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        POLICIES.read_text().replace(
            "\"'team' in object.metadata.?labels.orValue({})\"", '"object.metadata.labels +"'
        )
    )
    recording = write(
        tmp_path, line(1, "/validate", configmap("policy-a", {}, {}, "u1"), {"allowed": True})
    )
    result = run_webhook_dev("replay", str(recording), "--policy", str(bad))
    assert result.returncode == 2
    assert "the apiserver would refuse these policies" in result.stderr
    assert (
        'ValidatingAdmissionPolicy.admissionregistration.k8s.io "configmap-rules" is invalid: '
        'spec.validations[0].expression: Invalid value: "object.metadata.labels +": '
        "compilation failed: ERROR: <input>:1:25: Syntax error:" in result.stderr
    )
    assert "passed" not in result.stdout


NAMESPACE_POLICY = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: namespace-team}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  validations:
  - expression: "namespaceObject.metadata.?labels.orValue({}).team == 'a'"
    message: "only team a's namespaces"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: namespace-team}
spec: {policyName: namespace-team, validationActions: [Deny]}
"""


def test_a_recording_without_namespace_labels_reports_namespace_object_missing(tmp_path):
    policy = tmp_path / "namespace.yaml"
    policy.write_text(NAMESPACE_POLICY)
    recording = write(
        tmp_path,
        line(1, "/validate", configmap("a", {}, {}, "u1"), {"allowed": True}),
        line(
            2,
            "/validate",
            configmap("b", {}, {}, "u2"),
            {"allowed": True},
            namespace={"labels": {"team": "a"}},
        ),
        line(
            3,
            "/validate",
            configmap("c", {}, {}, "u3"),
            {"allowed": True},
            namespace={"labels": {"team": "b"}},
        ),
    )
    result = run_webhook_dev("replay", str(recording), "--policy", str(policy))
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert f"skip  {recording}:1  ConfigMap default/a CREATE (uid u1)" in out
    assert "  not compared: the recording lacks namespaceObject" in out
    assert f"ok    {recording}:2" in out
    assert f"FAIL  {recording}:3" in out
    assert "  policy: denied (422 Invalid): only team a's namespaces" in out
    assert out.rstrip().endswith("1 passed, 1 failed, 1 not compared")


AUTHORIZER_POLICY = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: may-escalate}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  validations:
  - expression: "authorizer.group('').resource('configmaps').check('escalate').allowed()"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: may-escalate}
spec: {policyName: may-escalate, validationActions: [Deny]}
"""


def test_a_policy_asking_the_authorizer_is_not_compared_and_a_conversion_never_is(tmp_path):
    policy = tmp_path / "authz.yaml"
    policy.write_text(AUTHORIZER_POLICY)
    conversion = json.loads(line(2, "/convert", configmap("x", {}, {}, "u2"), {}))
    conversion["request"] = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": "u2", "desiredAPIVersion": "v2", "objects": []},
    }
    conversion["response"] = None
    recording = write(
        tmp_path,
        line(1, "/validate", configmap("a", {}, {}, "u1"), {"allowed": True}),
        json.dumps(conversion),
    )
    result = run_webhook_dev("replay", str(recording), "--policy", str(policy))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not compared: the recording lacks authorizer" in result.stdout
    assert (
        "not compared: a conversion (only admissions are compared with a policy)" in result.stdout
    )
    assert result.stdout.rstrip().endswith("0 passed, 0 failed, 2 not compared")


def test_the_readme_command_runs_as_written(tmp_path):
    """README: ``webhook-dev replay calls.jsonl --policy tests/policies/configmaps.yaml``."""
    readme = (Path(__file__).parent.parent.parent / "README.md").read_text()
    command = "webhook-dev replay calls.jsonl --policy tests/policies/configmaps.yaml"
    assert command in readme
    write(
        tmp_path,
        line(1, "/validate", configmap("policy-a", {"team": "a"}, {}, "u1"), {"allowed": True}),
    )
    repo = Path(__file__).parent.parent.parent
    (tmp_path / "tests" / "policies").mkdir(parents=True)
    (tmp_path / "tests" / "policies" / "configmaps.yaml").write_text(POLICIES.read_text())
    result = run_webhook_dev(*command.split()[1:], cwd=tmp_path)
    assert repo.is_dir()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("1 passed, 0 failed")
