"""``replay --jobs N`` runs over shard processes: the same report, in the same order, as
``--jobs 1``; damaged lines still warned about; an app that cannot start still exits 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.conftest import Project, run_webhook_dev

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from make_recording import write_recording

SIDECAR = "sample_webhook.sidecar_injector"


def _recording(tmp_path: Path) -> Path:
    path = tmp_path / "rec.jsonl"
    write_recording(path, 150)
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(40, lines[40][:60] + "\n")  # a torn line: line 41
    path.write_text("".join(lines))
    return path


def test_sharded_replay_reports_as_one_process_does(tmp_path: Path, state_dir: Path) -> None:
    path = _recording(tmp_path)
    alone = run_webhook_dev("replay", str(path), "--app", SIDECAR, "--json")
    sharded = run_webhook_dev("replay", str(path), "--app", SIDECAR, "--json", "--jobs", "4")
    assert sharded.returncode == alone.returncode == 1, sharded.stderr  # the denied ones
    assert json.loads(sharded.stdout) == json.loads(alone.stdout)
    assert f"{path}:41: not JSON" in sharded.stderr and "skipped" in sharded.stderr
    wheres = [result["where"] for result in json.loads(sharded.stdout)["results"]]
    assert wheres == [f"{path}:{n}" for n in range(1, 152) if n != 41]


def test_sharded_text_report_keeps_order_and_quiet_drops_ok_lines(
    tmp_path: Path, state_dir: Path
) -> None:
    path = _recording(tmp_path)
    text = run_webhook_dev("replay", str(path), "--app", SIDECAR, "--jobs", "3")
    alone = run_webhook_dev("replay", str(path), "--app", SIDECAR)
    assert text.stdout == alone.stdout
    assert text.stdout.splitlines()[0].startswith(f"ok    {path}:1  Pod ")
    quiet = run_webhook_dev(
        "replay", str(path), "--app", SIDECAR, "--jobs", "2", "--quiet", "--where", "ns:team-a"
    )
    assert "ok    " not in quiet.stdout and "FAIL  " in quiet.stdout
    assert all(" team-a/" in line for line in quiet.stdout.splitlines() if line.startswith("FAIL"))
    summary = quiet.stdout.strip().splitlines()[-1]
    passed, failed = (int(part.split()[0]) for part in summary.split(", "))
    expected = run_webhook_dev(
        "replay", str(path), "--app", SIDECAR, "--json", "--where", "ns:team-a"
    )
    report = json.loads(expected.stdout)
    assert (passed, failed) == (report["passed"], report["failed"])


def test_sharded_replay_of_an_app_that_cannot_start_exits_2(
    tmp_path: Path, state_dir: Path, project: Project
) -> None:
    path = _recording(tmp_path)
    project.write("raise RuntimeError('broken at import')\n")
    done = run_webhook_dev("replay", str(path), "--app", "hook", "--jobs", "2", cwd=project.path)
    assert done.returncode == 2, done
    assert "broken at import" in done.stderr and done.stderr.count("did not start") == 1


def test_a_handler_that_raises_or_exits_is_reported_alike_with_the_app_in_the_shard(
    tmp_path: Path, state_dir: Path, project: Project
) -> None:
    """The shards run the app on their own loop, behind the worker's middleware: an
    exception and sys.exit() in a handler read as with a worker process, and the run
    goes on past them."""
    path = tmp_path / "rec.jsonl"
    write_recording(path, 40)
    project.write_app(
        "v1",
        body="if review['request']['name'].endswith('3'): raise ValueError('broken handler')\n"
        "    if review['request']['name'].endswith('7'): raise SystemExit(4)",
    )
    alone = run_webhook_dev("replay", str(path), "--app", "hook", "--json", cwd=project.path)
    sharded = run_webhook_dev(
        "replay", str(path), "--app", "hook", "--json", "--jobs", "2", cwd=project.path
    )
    assert sharded.returncode == alone.returncode == 1, sharded.stderr
    assert json.loads(sharded.stdout) == json.loads(alone.stdout)
    results = json.loads(sharded.stdout)["results"]
    assert len(results) == 40
    assert "ValueError: broken handler" in sharded.stdout
    assert "SystemExit: 4" in sharded.stdout
