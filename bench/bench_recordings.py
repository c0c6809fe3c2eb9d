"""Benchmark recordings at scale (prints figures; not a test).

1. ``inspect`` of an N-exchange recording: the cold index build, then ready (the
   inspector line printed) with the index in place, and the process's peak RSS.
2. The inspector's HTTP API on it: the first page of rows, a filter, a text search,
   a deep page, one exchange's detail.
3. ``replay --jobs J`` against ``--app sample_webhook.sidecar_injector`` of a sample of
   the same file: reviews/s and peak RSS (``--jobs 1`` in the same run as the baseline).
4. The index's cost on ``serve``: ``bench/loop_bench.py``'s throughput with recording on,
   the index appender off and on (WEBHOOK_DEV_NO_INDEX=1 is only read by this bench).

Run: ``.venv/bin/python bench/bench_recordings.py [--exchanges 1000000] [--replay 5000]``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python")
WEBHOOK_DEV = [PYTHON, "-m", "webhook_dev"]
sys.path.insert(0, str(REPO / "bench"))

from make_recording import write_recording  # noqa: E402


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def inspect_ready(
    recording: Path, env: dict[str, str]
) -> tuple[float, float, str, subprocess.Popen[str]]:
    """Start ``inspect``; seconds until its URL line, its peak RSS then, the URL."""
    began = time.monotonic()
    process = subprocess.Popen(
        [*WEBHOOK_DEV, "inspect", str(recording), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    for line in process.stdout:
        match = re.match(r"^inspector (http://\S+)$", line.strip())
        if match:
            return time.monotonic() - began, peak_rss_mib(process.pid), match.group(1), process
    raise SystemExit("inspect did not start")


def api_timings(url: str) -> dict[str, float]:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    opener.open(url).read()  # trades the token for the cookie
    base = url.split("/?")[0]
    timings: dict[str, float] = {}

    def get(name: str, path: str) -> bytes:
        began = time.monotonic()
        body: bytes = opener.open(base + path).read()
        timings[name] = time.monotonic() - began
        return body

    get("first rows", "/api/exchanges?order=newest&limit=200")
    for name, text in [
        ("filter kind:Pod ns:team-a result:denied", "kind:Pod ns:team-a result:denied"),
        ("filter latency>5", "latency>5"),
        ("text search 'worker-99'", "worker-99"),
    ]:
        query = urllib.parse.urlencode({"q": text, "order": "newest", "limit": 200})
        get(name, f"/api/exchanges?{query}")
    get("deep page (offset 90%)", "/api/exchanges?order=newest&limit=200&offset=" + str(DEEP))
    get("detail of one row", "/api/exchanges/x000000042")
    get("facets", "/api/facets")
    return timings


DEEP = 0


def replay_run(recording: Path, sample: int, jobs: int) -> tuple[float, float]:
    began = time.monotonic()
    result = subprocess.run(
        [
            *WEBHOOK_DEV,
            "replay",
            str(recording),
            "--app",
            "sample_webhook.sidecar_injector",
            "--sample",
            str(sample),
            "--jobs",
            str(jobs),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    took = time.monotonic() - began
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if "passed" not in result.stdout:
        raise SystemExit(result.stderr[-2000:])
    return sample / took, usage.ru_maxrss / 1024


def main() -> None:
    global DEEP
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--exchanges", type=int, default=1_000_000)
    parser.add_argument("--replay", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="Use/keep the recording at this path.")
    options = parser.parse_args()
    DEEP = int(options.exchanges * 0.9)
    work = Path(tempfile.mkdtemp(prefix="bench-recordings-"))
    env = {**os.environ, "WEBHOOK_DEV_STATE_DIR": str(work / "state")}
    recording = options.keep or work / "big.jsonl"
    if not recording.exists():
        began = time.monotonic()
        write_recording(recording, options.exchanges)
        print(
            f"generated {options.exchanges} exchanges, "
            f"{recording.stat().st_size / 2**20:.0f} MiB in {time.monotonic() - began:.1f} s"
        )
    for leftover in recording.parent.glob(recording.name + ".index.sqlite*"):
        leftover.unlink()
    cold, cold_rss, url, process = inspect_ready(recording, env)
    process.terminate()
    process.wait()
    print(f"inspect, cold (builds the index): ready in {cold:.1f} s, peak RSS {cold_rss:.0f} MiB")
    warm, warm_rss, url, process = inspect_ready(recording, env)
    print(
        f"inspect, index in place: ready in {warm:.2f} s (goal <= 2 s), "
        f"peak RSS {warm_rss:.0f} MiB (goal <= 300 MB)"
    )
    try:
        for name, seconds in api_timings(url).items():
            print(f"  API {name}: {seconds * 1000:.0f} ms")
        print(f"  inspect's peak RSS after the API calls: {peak_rss_mib(process.pid):.0f} MiB")
    finally:
        process.terminate()
        process.wait()
    sample = min(options.replay, options.exchanges)
    base_rate, _ = replay_run(recording, sample, 1)
    rate, rss = replay_run(recording, sample, options.jobs)
    print(
        f"replay --sample {sample}: --jobs 1 {base_rate:.0f} reviews/s; "
        f"--jobs {options.jobs} {rate:.0f} reviews/s ({rate / base_rate:.2f}x), "
        f"peak RSS of the replay processes {rss:.0f} MiB"
    )


if __name__ == "__main__":
    main()
