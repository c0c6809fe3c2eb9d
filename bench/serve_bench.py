"""Benchmark ``serve`` against the same app under aiohttp's own TLS server (prints figures).

In ONE run, three targets stay up side by side and rounds alternate between them, so a
burst of background load on this shared machine hits all of them:

* ``aiohttp TLS``       — ``sample_webhook.sidecar_injector`` under ``web.run_app`` with an
  SSL context: what a user runs without us (the baseline);
* ``serve``             — ``webhook-dev serve --no-record``;
* ``serve, recording``  — ``webhook-dev serve --record FILE``.

Each round sends a ~4 KB Pod review at concurrency 1 and at concurrency 16 over keep-alive
HTTPS connections (one per client), bounded by a call count and by ``--max-seconds``.
Medians over rounds of p50, p99, calls/s and the server side's CPU time per call (the
process and its children, from /proc: robust to other load on the machine, unlike
latency) are printed with their ratios to the baseline.
Goals (issue 14): ``serve`` p50 and p99 <= x1.5, throughput >= x0.7; recording costs <= 5%
of throughput.

Run: ``.venv/bin/python bench/serve_bench.py [--requests 2000] [--rounds 5]``; add
``--compare-tree DIR`` to measure ``serve`` from another checkout too (before/after, one run).
Client, proxy and workers share the machine's cores: compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from loop_bench import REPO, free_port, pod_review, start_serve

from webhook_dev.tls.authority import LocalAuthority

LEVELS = (1, 16)
BASELINE = "aiohttp TLS"
DIRECT_APP = """
import ssl, sys
from aiohttp import web
from sample_webhook.sidecar_injector import create_app
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(sys.argv[2], sys.argv[3])
web.run_app(create_app(), host="127.0.0.1", port=int(sys.argv[1]), ssl_context=context,
            access_log=None, print=None)
"""


async def load(
    url: str, body: bytes, requests: int, concurrency: int, context: ssl.SSLContext, limit: float
) -> dict[str, float]:
    """``requests`` calls (or as many as fit in ``limit`` seconds) by ``concurrency`` clients."""
    latencies: list[float] = []
    failures = 0
    remaining = 0
    deadline = 0.0
    connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            nonlocal remaining, failures
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    await response.read()
                    failures += response.status != 200
                latencies.append(time.perf_counter() - started)

        remaining, deadline = 20 * concurrency, time.perf_counter() + limit  # warm-up
        await asyncio.gather(*(client() for _ in range(concurrency)))
        warm_up = len(latencies)
        latencies.clear()
        remaining, deadline = requests, time.perf_counter() + limit
        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "rps": len(latencies) / elapsed,
        "failures": failures,
        "calls": len(latencies),
        "served": len(latencies) + warm_up,
    }


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants.

    Robust to other load on the machine, unlike wall-clock latency: it says how much
    work a call costs the server side (proxy and workers), whoever else wants the cores.
    """
    total = 0.0
    pending = [pid]
    tick = os.sysconf("SC_CLK_TCK")
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue  # it exited meanwhile
    return total


def wait_for_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the baseline app never listened on port {port}")


async def run(args: argparse.Namespace, state: Path, env: dict[str, str]) -> None:
    authority = LocalAuthority.load_or_create(state / "ca")
    cert, key = authority.serving_files(
        "bench", dns_names=["localhost"], ip_addresses=["127.0.0.1"]
    )
    context = ssl.create_default_context(cafile=str(state / "ca" / "ca.crt"))
    body = json.dumps(pod_review()).encode()
    port = free_port()
    direct = subprocess.Popen(  # noqa: ASYNC220 - started once, before measuring
        [sys.executable, "-c", DIRECT_APP, str(port), str(cert), str(key)], cwd=REPO, env=env
    )
    processes: list[subprocess.Popen[bytes]] = [direct]
    targets = [(BASELINE, f"https://127.0.0.1:{port}/mutate", direct.pid)]
    try:
        serves = [
            ("serve", ["--no-record"], env, REPO),
            ("serve, recording", ["--record"], env, REPO),
        ]
        if args.compare_tree:  # the same, from another checkout (e.g. before a change)
            # Run from that tree too: `python -m` puts the working directory first on
            # sys.path, ahead of PYTHONPATH, so from REPO it would import this tree's code.
            tree = Path(args.compare_tree)
            other = dict(env, PYTHONPATH=args.compare_tree)
            serves += [("before: serve", ["--no-record"], other, tree)]
            serves += [("before: recording", ["--record"], other, tree)]
        for number, (label, record, serve_env, cwd) in enumerate(serves):
            if record == ["--record"]:
                record = ["--record", str(state / f"bench-{number}.jsonl")]
            serve, url = start_serve(
                ["sample_webhook.sidecar_injector", "--port", "0", "--no-reload", *record],
                cwd,
                serve_env,
            )
            processes.append(serve)
            targets.append((label, f"{url}/mutate?timeout=10s", serve.pid))
        wait_for_port(port)
        runs = {(level, label): [] for level in LEVELS for label, _, _ in targets}
        for _ in range(args.rounds):
            for level in LEVELS:
                count = args.requests if level > 1 else args.requests // 4
                for label, url, pid in targets:
                    cpu_before = tree_cpu_seconds(pid)
                    result = await load(url, body, count, level, context, args.max_seconds)
                    cpu_ms = (tree_cpu_seconds(pid) - cpu_before) * 1000
                    result["cpu_ms"] = cpu_ms / result["served"]  # warm-up calls included
                    runs[level, label].append(result)
    finally:
        for process in processes:
            process.terminate()
            process.wait()
    print(
        f"review {len(body)} bytes; {args.rounds} rounds alternating between targets; "
        f"medians of rounds; load average after {os.getloadavg()[0]:.1f}"
    )
    for level in LEVELS:
        base = {
            key: statistics.median(r[key] for r in runs[level, BASELINE])
            for key in ("p50_ms", "p99_ms", "rps", "cpu_ms")
        }
        print(f"\nconcurrency {level}")
        print(
            f"{'target':18} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>8}  {'p50 x':>6} "
            f"{'p99 x':>6} {'tput x':>6}  {'cpu ms/call':>11} {'cpu x':>6}  {'calls':>6} failed"
        )
        for label, _, _ in targets:
            results = runs[level, label]
            row = {key: statistics.median(r[key] for r in results) for key in results[0]}
            print(
                f"{label:18} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {row['rps']:8.0f}  "
                f"{row['p50_ms'] / base['p50_ms']:6.2f} {row['p99_ms'] / base['p99_ms']:6.2f} "
                f"{row['rps'] / base['rps']:6.2f}  {row['cpu_ms']:11.3f} "
                f"{row['cpu_ms'] / base['cpu_ms']:6.2f}  {sum(r['calls'] for r in results):6.0f} "
                f"{sum(r['failures'] for r in results):.0f}"
            )
    print(
        "\ngoals: serve p50, p99 <= x1.5 and throughput >= x0.7 at both levels; "
        "recording costs <= 5% of serve's throughput"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="calls a round at 16")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--compare-tree",
        help="also measure serve from this source tree (e.g. a `git archive` of main)",
    )
    parser.add_argument("--max-seconds", type=float, default=10.0, help="per round and target")
    args = parser.parse_args()
    if args.compare_tree:
        args.compare_tree = str(Path(args.compare_tree).resolve())
    state = Path(tempfile.mkdtemp(prefix="bench-state-"))
    env = dict(os.environ, WEBHOOK_DEV_STATE_DIR=str(state))
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"load average before {os.getloadavg()[0]:.1f}"
    )
    asyncio.run(run(args, state, env))


if __name__ == "__main__":
    main()
