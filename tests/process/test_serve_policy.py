"""``webhook-dev serve --policy``: each live call decided by the policies too, beside the
webhook's answer — a mark under the call where they differ, the outcome kept in the
recording — and never in the answer's way."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Served, run_webhook_dev
from tests.process.test_replay_policy import configmap

LAB_POLICIES = Path(__file__).parent.parent / "policies" / "lab_configmaps.yaml"
APP = "tests.lab.policy_webhook"


@pytest.fixture(scope="module", autouse=True)
def evaluator() -> Path:
    from webhook_dev.lab import policy_evaluator

    return policy_evaluator.resolve(allow_build=True)


@pytest.fixture
def policies_without_namespace_selector(tmp_path: Path) -> Path:
    """The lab's policies bound everywhere: serve has no Namespace labels to give."""
    text = LAB_POLICIES.read_text().replace(
        '  matchResources:\n    namespaceSelector: {matchLabels: {policy-lab: "on"}}\n', ""
    )
    assert "namespaceSelector" not in text
    path = tmp_path / "policies.yaml"
    path.write_text(text)
    return path


def review(name: str, labels: dict[str, str], data: dict[str, str]) -> dict[str, Any]:
    request = configmap(name, labels, data, str(uuid.uuid4()))
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def serve_policy(serve: Callable[..., Served], recording: Path, policies: Path) -> Served:
    return serve(
        APP, "--port", "0", "--no-inspector", "--record", str(recording), "--policy", str(policies)
    )


def recorded(path: Path) -> dict[str, dict[str, Any]]:
    """``side/name`` → the recorded line."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return {
        f"{line['path'].split('?')[0].strip('/')}/{line['request']['request']['name']}": line
        for line in lines
    }


def test_serve_policy_marks_the_calls_where_the_policy_differs_and_records_its_outcome(
    serve: Callable[..., Served], tmp_path: Path, policies_without_namespace_selector: Path
) -> None:
    recording = tmp_path / "calls.jsonl"
    served = serve_policy(serve, recording, policies_without_namespace_selector)
    calls = [
        ("/validate", "pl-plain", {"team": "a"}, {"key": "value"}),
        ("/validate", "pl-lenient", {"team": "a"}, {"forbidden": "yes"}),
        ("/validate", "pl-quiet", {"app": "x"}, {}),
        ("/mutate", "pl-plain", {"team": "a"}, {}),
        ("/mutate", "pl-drift", {"team": "a"}, {}),
    ]
    answers = [
        served.review(review(name, labels, data), path=path) for path, name, labels, data in calls
    ]
    # The webhook's answers go back unchanged: the policy never decides.
    assert answers[1]["response"]["allowed"] is True
    served.wait_for("policy differs \\(object\\)")
    assert served.stop(signal.SIGINT) in (0, 130), served.output
    out = served.output
    assert (
        "policies: ValidatingAdmissionPolicy/lab-deny, ValidatingAdmissionPolicy/lab-libraries, "
        "ValidatingAdmissionPolicy/lab-warn, MutatingAdmissionPolicy/lab-owner" in out
    )
    assert (
        "    ≠ policy differs (allowed): denied (403 Forbidden): the key 'forbidden' is not allowed"
        in out
    )
    assert (
        "    ≠ policy differs (warnings): allowed, warned: a ConfigMap should have a team label"
        in out
    )
    assert out.count("≠ policy differs") == 3, out

    lines = recorded(recording)
    outcomes = {key: line["policy"]["outcome"] for key, line in lines.items()}
    assert outcomes == {
        "validate/pl-plain": "agrees",
        "validate/pl-lenient": "differs",
        "validate/pl-quiet": "differs",
        "mutate/pl-plain": "agrees",
        "mutate/pl-drift": "differs",
    }
    drift = lines["mutate/pl-drift"]["policy"]["differences"][0]
    assert drift["field"] == "object"
    assert (
        drift["webhook"]["metadata"]["labels"]["owner"],
        drift["policy"]["metadata"]["labels"]["owner"],
    ) == ("webhook", "policy")
    assert "namespace" not in lines["validate/pl-plain"]  # serve has no cluster

    # What replay --policy finds in the recording is what serve showed live.
    replayed = run_webhook_dev(
        "replay", str(recording), "--policy", str(policies_without_namespace_selector)
    )
    assert replayed.stdout.rstrip().endswith("2 passed, 3 failed"), replayed.stdout


def test_serve_policy_counts_a_namespace_selector_as_not_compared_and_old_recordings_open(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    recording = tmp_path / "calls.jsonl"
    served = serve_policy(serve, recording, LAB_POLICIES)
    served.review(review("pl-plain", {"team": "a"}, {}), path="/validate")
    served.wait_for("policy not compared")
    assert served.stop(signal.SIGINT) in (0, 130), served.output
    [line] = recorded(recording).values()
    assert line["policy"]["outcome"] == "not compared"
    assert any("namespace" in reason for reason in line["policy"]["unknown"]), line["policy"]

    # A line without the optional fields (an older recording) still opens.
    del line["policy"]
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps(line) + "\n")
    listed = run_webhook_dev("replay", str(old), "--policy", str(LAB_POLICIES))
    assert listed.returncode == 0 and "0 passed, 0 failed, 1 not compared" in listed.stdout
