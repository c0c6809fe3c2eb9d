"""``replay`` on recordings ``serve`` (or a full disk, or a hand) damaged (issue 15, finding 7
and the reading side of finding 3): a damaged line is skipped with a warning (``--strict``
refuses it, exit 2), a huge ``?timeout=`` and a non-object ``request.kind`` are results,
not tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Project, run_webhook_dev
from tests.reviews import request_review
from webhook_dev.recording import format as recording
from webhook_dev.reviews.exchange import Exchange, now

ALLOWED = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}


def _line(review: dict[str, object], path: str = "/mutate?timeout=10s") -> str:
    request = review["request"]
    assert isinstance(request, dict)
    exchange = Exchange(
        id="x",
        started=now(),
        path=path,
        http_status=200,
        request_review=review,
        response_review={
            **ALLOWED,
            "response": {"uid": request["uid"], "allowed": True, "warnings": ["v1"]},
        },
    )
    return recording.encode(exchange, redaction_key=None)


def _recording(tmp_path: Path) -> Path:
    odd_kind = request_review()
    odd_kind["request"]["kind"] = "Pod"  # written by hand, or by an older serve
    lines = [
        _line(request_review(uid="a")),
        _line(request_review(uid="b"))[:57] + "\n",  # torn by a full disk, then glued
        _line(request_review(uid="c"), path="/mutate?timeout=" + "9" * 400 + "s"),
        _line(odd_kind),
        _line(request_review(uid="d")),
    ]
    path = tmp_path / "rec.jsonl"
    path.write_text("".join(lines))
    return path


def test_replay_skips_a_damaged_line_with_a_warning_and_replays_the_rest(
    tmp_path: Path, state_dir: Path, project: Project
) -> None:
    path = _recording(tmp_path)
    done = run_webhook_dev("replay", str(path), "--app", "hook", "--json", cwd=project.path)
    assert "Traceback" not in done.stderr, done.stderr
    assert f"{path}:2: not JSON" in done.stderr and "skipped" in done.stderr
    assert f"{path}:4: cannot replay (request.kind must be an object" in done.stderr
    summary = json.loads(done.stdout)
    assert len(summary["results"]) == 3, summary  # the huge ?timeout= replayed too
    assert summary["failed"] == 0 and done.returncode == 0


def test_replay_strict_refuses_a_damaged_recording_before_calling_anything(
    tmp_path: Path, state_dir: Path, project: Project
) -> None:
    path = _recording(tmp_path)
    done = run_webhook_dev("replay", str(path), "--app", "hook", "--strict", cwd=project.path)
    assert done.returncode == 2, done
    assert f"{path}:2" in done.stderr and "Traceback" not in done.stderr
    assert "passed" not in done.stdout
