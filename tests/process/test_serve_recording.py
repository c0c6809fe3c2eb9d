"""Recordings survive a crash of serve and replay afterwards."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Served, run_webhook_dev
from tests.reviews import pod, request_review


def test_killing_serve_keeps_every_completed_line_of_the_recording(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    record = tmp_path / "rec.jsonl"
    record.write_text("")  # appended to, never truncated
    served = serve(
        "sample_webhook.sidecar_injector", "--port", "0", "--record", str(record), "--no-reload"
    )
    for number in range(20):
        served.review(request_review(pod(f"web-{number}"), uid=f"uid-{number}"))
    # Recorded just after the answer went back (the recorder is the first subscriber, so
    # the console line means the line is written): kill -9 once the last one is shown.
    served.wait_for(r"Pod default/web-19\s+CREATE")
    served.stop(signal.SIGKILL)
    lines = record.read_text().splitlines()
    assert [json.loads(line)["request"]["request"]["uid"] for line in lines] == [
        f"uid-{number}" for number in range(20)
    ]
    replayed = run_webhook_dev("replay", str(record), "--app", "sample_webhook.sidecar_injector")
    assert replayed.returncode == 0 and "20 passed, 0 failed" in replayed.stdout
