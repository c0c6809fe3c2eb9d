"""Benchmark recordings at scale (prints figures; not a test).

1. ``inspect`` of an N-exchange recording: the cold index build, then ready (the
   inspector line printed) with the index in place, and the process's peak RSS.
2. The inspector's HTTP API on it: the first page of rows, a filter, a text search,
   a deep page, one exchange's detail.
3. ``replay --jobs J`` against ``--app sample_webhook.sidecar_injector`` of a sample of
   the same file: reviews/s, the CPU each process of the tree used, and the tree's peak
   RSS and PSS (summed over the replay, its shards and their workers; PSS counts shared
   pages once), with ``--jobs 1`` in the same run as the baseline.
4. The index's cost on ``serve``: ``loop_bench``'s load (concurrency 16, a 4 KB review)
   against ``serve --record``, with the index appender on and off (off: this bench starts
   serve through a launcher that swaps the appender for a no-op; serve has no such flag),
   rounds interleaved; calls/s and serve's own CPU per call (robust to the load).

Run: ``.venv/bin/python bench/bench_recordings.py [--exchanges 1000000] [--replay 5000]``
(``--keep PATH`` reuses a recording; ``--only replay,serve`` runs some parts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import ssl
import statistics
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


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found += [int(child) for child in children.read().split()]
    except OSError:
        pass
    return found


def process_tree(pid: int) -> list[int]:
    tree = [pid]
    for parent in tree:
        tree.extend(_children(parent))
    return tree


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process so far (``None`` once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB, from smaps_rollup."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as cmdline:
            words = cmdline.read().split("\0")
    except OSError:
        return "?"
    module = next((w for w in words if w.startswith("webhook_dev")), "")
    if not module:
        return Path(words[0]).name or "?"
    return module.rsplit(".", 1)[-1] if module != "webhook_dev" else "replay"


def replay_run(recording: Path, sample: int, jobs: int) -> tuple[float, float, float, str]:
    """``replay --sample``: reviews/s, the tree's peak RSS and PSS (MiB), CPU a process."""
    command = [
        *WEBHOOK_DEV,
        "replay",
        str(recording),
        "--app",
        "sample_webhook.sidecar_injector",
        "--sample",
        str(sample),
        "--jobs",
        str(jobs),
        "--quiet",
    ]
    began = time.monotonic()
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=REPO)
        peak_rss = peak_pss = 0
        cpu: dict[int, tuple[str, float]] = {}
        while process.poll() is None:
            rss = pss = 0
            for pid in process_tree(process.pid):
                seconds = cpu_seconds(pid)
                if seconds is not None:
                    cpu[pid] = (cpu.get(pid, (_name(pid), 0.0))[0], seconds)
                one_rss, one_pss = memory_kib(pid)
                rss, pss = rss + one_rss, pss + one_pss
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.05)
        took = time.monotonic() - began
        output.seek(0)
        text = output.read()
    if "passed" not in text:
        raise SystemExit(text[-2000:])
    by_name: dict[str, float] = {}
    for name, seconds in cpu.values():
        by_name[name] = by_name.get(name, 0.0) + seconds
    spent = ", ".join(f"{name} {seconds:.1f}" for name, seconds in sorted(by_name.items()))
    total = sum(by_name.values())
    detail = f"CPU s: {spent}; {total * 1e3 / sample:.2f} ms CPU a review in all"
    return sample / took, peak_rss / 1024, peak_pss / 1024, detail


NO_INDEX_LAUNCHER = """
import sys
import webhook_dev.recording.writer as writer
class NoIndex:
    def __init__(self, path): pass
    def add(self, exchange, offset, length): pass
    def flush(self): pass
    def close(self): pass
writer.IndexAppender = NoIndex
from webhook_dev.commands.main import main
sys.argv[0] = "webhook-dev"
main()
"""


def serve_index_cost(rounds: int, requests: int) -> None:
    """serve --record with the index appender and without: calls/s, serve's CPU a call."""
    from loop_bench import load, pod_review

    work = Path(tempfile.mkdtemp(prefix="bench-serve-index-"))
    env = {**os.environ, "WEBHOOK_DEV_STATE_DIR": str(work / "state")}
    body = json.dumps(pod_review()).encode()
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        for label, launcher in (
            ("index on", ["-m", "webhook_dev"]),
            ("index off", ["-c", NO_INDEX_LAUNCHER]),
        ):
            log = (work / f"{label}.log").open("wb")
            process = subprocess.Popen(
                [
                    PYTHON,
                    *launcher,
                    "serve",
                    "sample_webhook.sidecar_injector",
                    "--port",
                    "0",
                    "--no-reload",
                    "--record",
                    str(work / f"{label.replace(' ', '-')}.jsonl"),
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            for _ in range(1200):
                found = re.search(
                    r"^serving (https://\S+)$", (work / f"{label}.log").read_text(), re.M
                )
                if found:
                    break
                if process.poll() is not None:
                    raise SystemExit((work / f"{label}.log").read_text())
                time.sleep(0.05)
            else:
                raise SystemExit(f"serve ({label}) did not start")
            servers[label] = (process, found.group(1) + "/mutate?timeout=10s")
        context = ssl.create_default_context(cafile=str(work / "state" / "ca" / "ca.crt"))
        results: dict[str, list[tuple[float, float]]] = {label: [] for label in servers}
        for _ in range(rounds):
            for label, (process, url) in servers.items():
                before = cpu_seconds(process.pid) or 0.0
                figures = asyncio.run(load(url, body, requests, context))
                spent = (cpu_seconds(process.pid) or 0.0) - before
                results[label].append((figures["rps"], spent * 1e6 / (requests + 200)))
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait()
    rows = {
        label: (statistics.median(r for r, _ in runs), statistics.median(c for _, c in runs))
        for label, runs in results.items()
    }
    off_rps, off_cpu = rows["index off"]
    for label, (rps, cpu_us) in rows.items():
        print(
            f"serve --record, {label}: {rps:.0f} calls/s ({rps / off_rps:.3f}x), "
            f"serve's CPU {cpu_us:.0f} us a call ({cpu_us / off_cpu:.3f}x)"
        )


def main() -> None:
    global DEEP
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--exchanges", type=int, default=1_000_000)
    parser.add_argument("--replay", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--keep", type=Path, help="Use/keep the recording at this path.")
    parser.add_argument("--only", default="inspect,browser,replay,serve", help="Parts to run.")
    parser.add_argument("--warm", action="store_true", help="Keep an index in place.")
    parser.add_argument("--serve-rounds", type=int, default=5)
    parser.add_argument("--serve-requests", type=int, default=2000)
    options = parser.parse_args()
    parts = set(options.only.split(","))
    DEEP = int(options.exchanges * 0.9)
    work = Path(tempfile.mkdtemp(prefix="bench-recordings-"))
    env = {**os.environ, "WEBHOOK_DEV_STATE_DIR": str(work / "state")}
    recording = options.keep or work / "big.jsonl"
    if parts & {"inspect", "browser", "replay"} and not recording.exists():
        began = time.monotonic()
        write_recording(recording, options.exchanges)
        print(
            f"generated {options.exchanges} exchanges, "
            f"{recording.stat().st_size / 2**20:.0f} MiB in {time.monotonic() - began:.1f} s"
        )
    if "inspect" in parts:
        inspect_part(recording, env, cold=not options.warm)
    if "browser" in parts:
        browser_part(recording, env)
    if "replay" in parts:
        sample = min(options.replay, options.exchanges)
        runs = {}
        for jobs in (1, options.jobs):
            runs[jobs] = replay_run(recording, sample, jobs)
        base_rate = runs[1][0]
        for jobs, (rate, rss, pss, detail) in runs.items():
            print(
                f"replay --sample {sample} --jobs {jobs}: {rate:.0f} reviews/s "
                f"({rate / base_rate:.2f}x --jobs 1), peak tree RSS {rss:.0f} MiB, "
                f"PSS {pss:.0f} MiB; {detail}"
            )
    if "serve" in parts:
        serve_index_cost(options.serve_rounds, options.serve_requests)


def inspect_part(recording: Path, env: dict[str, str], *, cold: bool) -> None:
    if cold:
        for leftover in recording.parent.glob(recording.name + ".index.sqlite*"):
            leftover.unlink()
        seconds, rss, url, process = inspect_ready(recording, env)
        process.terminate()
        process.wait()
        print(f"inspect, cold (builds the index): ready in {seconds:.1f} s, peak RSS {rss:.0f} MiB")
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


BROWSER_FILTERS = (
    "kind:Pod ns:team-a result:denied",
    "latency>5",
    "worker-99",
    "kind:Secret op:UPDATE",
    "nothing-like-this",
)


def browser_part(recording: Path, env: dict[str, str]) -> None:
    """The page in Debian's headless Chromium (Playwright), on ``inspect`` of the file:
    first rows, each filter typed into the search box until the list shows its answer
    (the page's 150 ms typing pause included, as a user waits it), a row's detail, and a
    jump to the middle of the list. The index must be in place (run ``inspect`` first)."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    _, _, url, process = inspect_ready(recording, env)
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.set_default_timeout(60_000)
            rows = page.locator("#exchanges tbody tr")
            began = time.perf_counter()
            page.goto(url)
            rows.first.wait_for()
            print(f"browser: first rows {time.perf_counter() - began:.2f} s (goal <= 1 s)")
            count = page.locator("#count")
            for text in BROWSER_FILTERS:
                before = count.inner_text()
                began = time.perf_counter()
                page.locator("#filters input[name=text]").fill(text)
                page.wait_for_function(
                    "before => document.querySelector('#count').textContent !== before",
                    arg=before,
                )
                elapsed = time.perf_counter() - began
                print(f"  filter {text!r}: {elapsed:.2f} s (goal <= 0.5 s): {count.inner_text()}")
            page.locator("#filters input[name=text]").fill("")
            page.wait_for_function(
                "() => document.querySelectorAll('#exchanges tbody tr').length > 0"
            )
            began = time.perf_counter()
            rows.nth(3).click()
            page.locator("#detail h2").wait_for()
            print(f"  a row's detail: {time.perf_counter() - began:.2f} s")
            first = rows.first.inner_text()
            began = time.perf_counter()
            page.locator(".list").evaluate("list => { list.scrollTop = list.scrollHeight / 2; }")
            page.wait_for_function(  # rows again, and other ones (not the list emptied)
                "first => { const row = document.querySelector('#exchanges tbody tr');"
                " return row !== null && row.innerText !== first; }",
                arg=first,
            )
            print(
                f"  jump to the middle: {time.perf_counter() - began:.2f} s, "
                f"{rows.count()} rows in the page"
            )
            browser.close()
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
