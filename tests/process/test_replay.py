"""``webhook-dev replay``: recorded reviews against the current code, exit 0 / 1 / 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Project, Served, run_webhook_dev
from tests.reviews import pod, request_review

SIDECAR = "sample_webhook.sidecar_injector"


def record_sidecar_session(serve: Callable[..., Served], record: Path) -> None:
    served = serve(SIDECAR, "--port", "0", "--record", str(record), "--no-reload")
    annotated = pod("annotated", annotations={"team": "a"})
    opted_out = pod("plain", annotations={"sidecar-injector/inject": "off"})
    for number, obj in enumerate([pod("web"), annotated, opted_out]):
        served.review(request_review(obj, uid=f"uid-{number}"))
    served.review(request_review(pod("old"), uid="uid-beta", version="admission.k8s.io/v1beta1"))
    served.wait_for(r"Pod default/old")
    served.stop()


def test_replaying_a_recording_to_the_same_app_passes(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    record = tmp_path / "rec.jsonl"
    record_sidecar_session(serve, record)
    result = run_webhook_dev("replay", str(record), "--app", SIDECAR, "--idempotence")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("4 passed, 0 failed")


def test_replaying_to_an_app_that_answers_differently_fails_with_a_readable_diff(
    serve: Callable[..., Served], project: Project, tmp_path: Path
) -> None:
    record = tmp_path / "rec.jsonl"
    record_sidecar_session(serve, record)
    project.write(
        (Path(__file__).parents[2] / "sample_webhook" / "sidecar_injector.py")
        .read_text()
        .replace('"containerPort": 80', '"containerPort": 8080')
    )
    result = run_webhook_dev("replay", str(record), "--app", "hook", cwd=project.path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL" in result.stdout and "Pod default/web CREATE (uid uid-0)" in result.stdout
    assert '-            "containerPort": 80,' in result.stdout
    assert '+            "containerPort": 8080,' in result.stdout
    assert result.stdout.strip().endswith("1 passed, 3 failed")


def test_a_webhook_that_is_not_idempotent_fails_the_second_pass(
    serve: Callable[..., Served], project: Project, tmp_path: Path
) -> None:
    record = tmp_path / "rec.jsonl"
    record_sidecar_session(serve, record)
    always = (
        (Path(__file__).parents[2] / "sample_webhook" / "sidecar_injector.py")
        .read_text()
        .replace('if annotations.get(INJECTED) == "true" or any(', "if False and any(")
    )
    project.write(always)
    plain = run_webhook_dev("replay", str(record), "--app", "hook", cwd=project.path)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    twice = run_webhook_dev(
        "replay", str(record), "--app", "hook", "--idempotence", "--json", cwd=project.path
    )
    assert twice.returncode == 1
    report = json.loads(twice.stdout)
    assert (report["passed"], report["failed"]) == (1, 3)
    failed = [r for r in report["results"] if not r["passed"]]
    assert failed[0]["idempotence"][0]["field"] == "object after a second pass"


def test_replay_to_a_url_verifies_tls_with_the_local_ca(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    record = tmp_path / "rec.jsonl"
    record_sidecar_session(serve, record)
    served = serve(SIDECAR, "--port", "0", "--no-record", "--no-reload")
    result = run_webhook_dev("replay", str(record), "--url", served.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("4 passed, 0 failed")


def test_replay_exits_2_with_one_line_on_unreadable_or_unknown_version_files(
    tmp_path: Path, state_dir: Path
) -> None:
    future = tmp_path / "future.jsonl"
    future.write_text(json.dumps({"version": 7, "id": "x", "time": "2030-01-01T00:00:00"}) + "\n")
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("not json\n{}\n")
    for path, message in [
        (future, "recording format version 7 is not supported"),
        (garbage, "garbage.jsonl:1: not JSON"),
        (tmp_path / "missing.jsonl", "does not exist"),
    ]:
        result = run_webhook_dev("replay", str(path), "--app", SIDECAR)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr


def test_replay_needs_exactly_one_target(tmp_path: Path, state_dir: Path) -> None:
    result = run_webhook_dev("replay", str(tmp_path / "x.jsonl"))
    assert result.returncode == 2 and "exactly one of --app APP or --url URL" in result.stderr
