"""Benchmark ``webhook-dev up --shadow``: what shadow mode costs the cluster's admission path.

    sudo .venv/bin/python bench/bench_shadow.py [--requests 800] [--rounds 3]

Runs on a running lab with a node (``webhook-dev lab up``; its identity from the
``WEBHOOK_DEV_LAB_*`` variables, as for the lab tests). Production is the sidecar-injector
sample's own Deployment on the node; the load is server-side dry-run Pod creates in the
namespace it injects into, with the lab's admin certificate (bench_up's ``LoadClient``),
at concurrency 1 and 16, in two setups alternating round by round:

* ``without``: production alone;
* ``shadow``:  the same, with ``webhook-dev up --shadow`` running (``--ssh``, the local code
  is the same sample, recording off): every call also goes to the copy entry, which the
  proxy answers at once, and is compared off the answer's path.

Figures are the ``shadow`` setup's p50 and p99 as ratios against ``without`` in the same
run, and the rate of calls shadowed: calls a second at concurrency 16 with every call
compared and none dropped (the ``shadow: N compared ...`` line ``up`` prints on exit
must count every call sent, and no ``dropped``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_up import LoadClient, Samples, wait_line  # noqa: E402

from webhook_dev.lab import Lab  # noqa: E402

NAMESPACE = "sidecar-demo"  # labelled sidecar-inject: enabled by the sample's manifest
# A console line's duration: how long the proxy took to answer the copy.
COPY_MS = re.compile(r"  CREATE  \S+.*?  ([\d.]+) ms  \[gen")
SUMMARY = re.compile(r"shadow: (\d+) compared, (\d+) differed \((\d+) noisy\)(.*)")


def shadow_up(lab: Lab, service: str, state: Path) -> subprocess.Popen[str]:
    argv = lab.workstation_argv(
        [
            sys.executable,
            "-m",
            "webhook_dev",
            "up",
            "--service",
            service,
            "--ssh",
            lab.ssh_destination,
            "--shadow",
            "--app",
            "sample_webhook.sidecar_injector",
            "--no-record",
            "--no-reload",
            "--no-inspector",
        ]
    )
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "WEBHOOK_DEV_STATE_DIR": str(state)},
        cwd=REPO,
    )


def drain(child: subprocess.Popen[str]) -> list[str]:
    """Read the child's lines as they come (a full pipe would stall its console, and with
    it every call), into the list returned."""
    lines: list[str] = []

    def read() -> None:
        assert child.stdout is not None
        lines.extend(child.stdout)

    threading.Thread(target=read, daemon=True).start()
    return lines


def stop(child: subprocess.Popen[str], lines: list[str]) -> str:
    """SIGTERM, and everything it printed (the summary is the last line)."""
    os.killpg(child.pid, signal.SIGTERM)
    child.wait(60)
    time.sleep(0.2)  # the reader thread reads the last lines
    return "".join(lines)


def measure(lab: Lab, service: str, requests: int, rounds: int, state: Path) -> None:
    client = LoadClient(lab)
    setups = {
        (name, concurrency): Samples(f"{name} c{concurrency}")
        for name in ("without", "shadow")
        for concurrency in (1, 16)
    }
    sent_while_shadowing = 0
    compared = dropped = 0
    shadow_seconds = 0.0
    copy_ms: list[float] = []
    for round_number in range(rounds):
        for name in ("without", "shadow") if round_number % 2 == 0 else ("shadow", "without"):
            child = shadow_up(lab, service, state) if name == "shadow" else None
            lines: list[str] = []
            if child is not None:
                wait_line(child, "ready: kube-apiserver")
                lines = drain(child)
            for concurrency in (1, 16):
                count = requests if concurrency == 16 else requests // 4
                samples = setups[(name, concurrency)]
                before = samples.seconds
                asyncio.run(client.run(NAMESPACE, count, samples, True, concurrency))
                if child is not None:
                    sent_while_shadowing += count
                    if concurrency == 16:
                        shadow_seconds += samples.seconds - before
            if child is not None:
                rest = stop(child, lines)
                copy_ms += [float(m.group(1)) for m in COPY_MS.finditer(rest)]
                found = SUMMARY.search(rest)
                if found is None:
                    raise SystemExit(f"no shadow summary in up's output:\n{rest}")
                compared += int(found.group(1))
                tail = found.group(4)
                dropped += int(m.group(1)) if (m := re.search(r"(\d+) dropped", tail)) else 0
    print(f"{'setup':<14} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>8}")
    for samples in setups.values():
        print(
            f"{samples.setup:<14} {samples.percentile(0.5):8.2f} "
            f"{samples.percentile(0.99):8.2f} {samples.per_second:8.0f}"
        )
    for concurrency in (1, 16):
        base, shadow = setups[("without", concurrency)], setups[("shadow", concurrency)]
        print(
            f"shadow / without at c{concurrency}: "
            f"p50 x{shadow.percentile(0.5) / base.percentile(0.5):.2f}, "
            f"p99 x{shadow.percentile(0.99) / base.percentile(0.99):.2f}"
        )
    if copy_ms:
        copy_ms.sort()
        print(
            f"the copy answered inside up in p50 {copy_ms[len(copy_ms) // 2]:.2f} ms, "
            f"p99 {copy_ms[int(len(copy_ms) * 0.99)]:.2f} ms ({len(copy_ms)} calls)"
        )
    c16 = setups[("shadow", 16)]
    rate = len(c16.latencies_ms) / shadow_seconds if shadow_seconds else 0.0
    print(
        f"shadowed: {sent_while_shadowing} calls sent, {compared} compared (probes included), "
        f"{dropped} dropped; {rate:.0f} calls/s at c16 shadowed without a dropped comparison"
        if dropped == 0
        else f"shadowed: {dropped} comparisons dropped at {rate:.0f} calls/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    lab = Lab.attach()
    deployed = lab.deploy_sample("sidecar-injector")
    state = Path(f"/tmp/bench-shadow-state-{os.getpid()}")
    state.mkdir(mode=0o700)
    try:
        service = f"{deployed.namespace}/{deployed.service}"
        measure(lab, service, options.requests, options.rounds, state)
    finally:
        lab.delete_sample(deployed)


if __name__ == "__main__":
    main()
