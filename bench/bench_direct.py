"""Benchmark ``webhook-dev up --direct`` against a webhook in the master and ``--ssh``.

    sudo .venv/bin/python bench/bench_direct.py [--requests 3000] [--rounds 3]

Admission round trip = server-side dry-run Pod creates (``?dryRun=All``) from the root
namespace, each admitted by the sidecar-injector sample, at concurrency 1 and 16, in three
setups running side by side (each its own namespace, rounds alternating between them):

* ``in-master``  — the sample served with plain aiohttp+TLS inside the master namespace:
  no network hop to a workstation, no proxy (the baseline);
* ``--direct``   — ``webhook-dev up --direct``: the apiserver dials the workstation,
  the allow-list check and splice, the TLS proxy, the worker process;
* ``--ssh``      — ``webhook-dev up --ssh``: the same, through the asyncssh tunnel.

Figures are ratios against ``in-master`` measured in the same run (the goal: ``--direct``
within x1.2 at p50), plus calls over 30 ms. Reuses a running lab of this shell's identity
(``WEBHOOK_DEV_LAB_*``; made routable for the run, then put back), else starts its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_up import (
    CONCURRENCY,
    NO_INSPECTOR,
    REPO,
    SERVE_SAMPLE,
    LoadClient,
    Samples,
    process,
    up_argv,
    webhook_objects,
)

from webhook_dev.errors import LabError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.lab import Lab, teardown
from webhook_dev.tls import certs

BENCH_ENV = {
    "WEBHOOK_DEV_LAB_PREFIX": "wddirb",
    "WEBHOOK_DEV_LAB_SUBNET": "10.237.53.0/24",
    "WEBHOOK_DEV_LAB_DIR": "/run/webhook-dev-lab-directbench",
}
SETUPS = {"in-master": "bench-master", "--direct": "bench-direct", "--ssh": "bench-ssh"}


def round_trips(lab: Lab, work: Path, requests: int, rounds: int) -> dict[int, list[Samples]]:
    cluster = Cluster.connect(kubeconfig=str(lab.host_kubeconfig))
    ca = certs.new_ca("bench CA")
    issued = certs.new_serving_cert(
        ca, dns_names=certs.service_dns_names("sidecar-injector", "bench-master")
    )
    cert, key = work / "master.crt", work / "master.key"
    cert.write_bytes(issued.cert_pem)
    key.write_bytes(issued.key_pem)
    master_port = 18443
    webhook_objects(cluster, "bench-master", ca.cert_pem, (lab.master_ip, master_port))
    webhook_objects(cluster, "bench-direct", ca.cert_pem, None)
    webhook_objects(cluster, "bench-ssh", ca.cert_pem, None)
    env = {**os.environ, "PYTHONPATH": str(REPO), "WEBHOOK_DEV_STATE_DIR": str(work / "state")}
    in_master = lab.master_argv(
        [sys.executable, "-c", SERVE_SAMPLE, lab.master_ip, str(master_port), str(cert), str(key)]
    )
    direct = up_argv(lab, "bench-direct", ["--direct"], NO_INSPECTOR)
    ssh = up_argv(lab, "bench-ssh", ["--ssh", lab.ssh_destination], NO_INSPECTOR)
    client = LoadClient(lab)
    results = {level: {name: Samples(name) for name in SETUPS} for level in (CONCURRENCY, 1)}
    with (
        process(in_master, "listening", env=env),
        process(direct, "ready: kube-apiserver", env=env, cwd=REPO),
        process(ssh, "ready: kube-apiserver", env=env, cwd=REPO),
    ):
        for namespace in SETUPS.values():  # warm up, and prove every path mutates
            asyncio.run(client.run(namespace, 200, Samples("warm-up"), True, CONCURRENCY))
        for level, by_setup in results.items():
            count = requests // rounds if level > 1 else requests // (4 * rounds)
            for _ in range(rounds):
                for name, namespace in SETUPS.items():
                    asyncio.run(client.run(namespace, count, by_setup[name], False, level))
    for namespace in SETUPS.values():
        cluster.delete(f"/api/v1/namespaces/{namespace}")
        cluster.delete(
            f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/bench-{namespace}"
        )
    return {level: list(by_setup.values()) for level, by_setup in results.items()}


def print_table(results: dict[int, list[Samples]], rounds: int) -> None:
    for level, samples in results.items():
        baseline = next(r for r in samples if r.setup == "in-master")
        print(
            f"\nadmission round trip, dry-run Pod creates, concurrency {level}, "
            f"{len(baseline.latencies_ms)} calls per setup in {rounds} alternating rounds"
        )
        print(
            f"{'setup':12} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>8} {'>30ms':>6}   "
            "ratios to in-master (p50, p99, throughput)"
        )
        for result in samples:
            print(
                f"{result.setup:12} {result.percentile(0.5):8.2f} "
                f"{result.percentile(0.99):8.2f} {result.per_second:8.0f} {result.stalls:6d}   "
                f"x{result.percentile(0.5) / baseline.percentile(0.5):.2f}  "
                f"x{result.percentile(0.99) / baseline.percentile(0.99):.2f}  "
                f"x{result.per_second / baseline.per_second:.2f}"
            )
    print("\ngoal: --direct within x1.2 of in-master at p50")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="per setup, all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for name, value in BENCH_ENV.items():
        os.environ.setdefault(name, value)
    try:
        lab, owned = Lab.attach(), False
        lab.wait_ready(timeout=20)
    except LabError:
        teardown()
        lab, owned = Lab.start(gateway_ports="clientspecified", routable=True), True
    was_routable = lab.state.routable
    lab.set_routable(True)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="webhook-dev-directbench-") as tmp:
            results = round_trips(lab, Path(tmp), args.requests, args.rounds)
    finally:
        if owned:
            teardown()
        else:
            lab.set_routable(was_routable)
    print_table(results, args.rounds)
    print(f"(measured in {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
