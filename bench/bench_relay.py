"""Benchmark ``webhook-dev up --relay`` against ``--ssh`` and the sample's in-cluster replica.

    sudo .venv/bin/python bench/bench_relay.py [--requests 3000] [--rounds 3] [--cycles 3]

Needs the lab's node (Pods that really run). Admission round trip = server-side dry-run Pod
creates from the root namespace, each admitted by the sidecar-injector sample, at
concurrency 1 and 16, in three setups side by side (rounds alternating between them):

* ``in-cluster`` — ``sample_webhook/deploy/sidecar-injector.yaml`` deployed on the node
  (``Lab.deploy_sample``): the sample as a real Pod, the apiserver dials its Pod IP (the
  baseline);
* ``--relay``    — ``webhook-dev up --relay``: apiserver → relay Pod on the node → one
  WebSocket port-forward per connection (apiserver → kubelet → the Pod's loopback) → the
  workstation's TLS proxy → the worker;
* ``--ssh``      — ``webhook-dev up --ssh``: the asyncssh reverse tunnel on the master.

Then ``up --relay`` to ready, ``down`` by SIGTERM, and ``down`` from another process after
``kill -9``. Figures are ratios against ``in-cluster`` measured in the same run. Reuses a
running lab of this shell's identity (``WEBHOOK_DEV_LAB_*``), else starts its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_up import CONCURRENCY, REPO, LoadClient, Samples, process, webhook_objects

from webhook_dev.errors import LabError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.lab import Lab, teardown
from webhook_dev.tls import certs

BENCH_ENV = {
    "WEBHOOK_DEV_LAB_PREFIX": "wdrelb",
    "WEBHOOK_DEV_LAB_SUBNET": "10.237.81.0/24",
    "WEBHOOK_DEV_LAB_DIR": "/run/webhook-dev-lab-relaybench",
}
WEBHOOK_API = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def up_argv(lab: Lab, namespace: str, transport: list[str]) -> list[str]:
    return lab.workstation_argv(
        [
            sys.executable,
            "-m",
            "webhook_dev",
            "up",
            "--service",
            f"{namespace}/sidecar-injector",
            *transport,
            "--app",
            "sample_webhook.sidecar_injector",
            "--no-record",
            "--no-reload",
            "--no-inspector",
        ]
    )


def relay_flags() -> list[str]:
    from webhook_dev.lab import images  # the node's images

    return ["--relay", "--relay-image", images.SAMPLE_IMAGE]


def intercept_elsewhere(cluster: Cluster, namespace: str, apps: str) -> None:
    """The webhook calls for Pods in ``apps``, not its own namespace (where the relay runs)."""
    cluster.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": apps}}
    )

    def elsewhere(config: dict[str, object]) -> dict[str, object]:
        for entry in config["webhooks"]:  # type: ignore[attr-defined]
            entry["namespaceSelector"] = {"matchLabels": {"kubernetes.io/metadata.name": apps}}
        return config

    cluster.update(f"{WEBHOOK_API}/bench-{namespace}", elsewhere)


def round_trips(lab: Lab, work: Path, requests: int, rounds: int) -> dict[int, list[Samples]]:
    cluster = Cluster.connect(kubeconfig=str(lab.host_kubeconfig))
    deployed = lab.deploy_sample("sidecar-injector")
    ca = certs.new_ca("bench CA")
    for namespace in ("bench-relay", "bench-ssh"):
        webhook_objects(cluster, namespace, ca.cert_pem, None)
        intercept_elsewhere(cluster, namespace, f"{namespace}-apps")
    time.sleep(2)  # the default service accounts
    env = {**os.environ, "PYTHONPATH": str(REPO), "WEBHOOK_DEV_STATE_DIR": str(work / "state")}
    setups = {
        "in-cluster": "sidecar-demo",  # the namespace the deployed sample injects into
        "--relay": "bench-relay-apps",
        "--ssh": "bench-ssh-apps",
    }
    client = LoadClient(lab)
    results = {level: {name: Samples(name) for name in setups} for level in (CONCURRENCY, 1)}
    try:
        with (
            process(up_argv(lab, "bench-relay", relay_flags()), "ready: kube", env=env, cwd=REPO),
            process(
                up_argv(lab, "bench-ssh", ["--ssh", lab.ssh_destination]),
                "ready: kube",
                env=env,
                cwd=REPO,
            ),
        ):
            for namespace in setups.values():  # warm up, and prove every path mutates
                asyncio.run(client.run(namespace, 200, Samples("warm-up"), True, CONCURRENCY))
            for level, by_setup in results.items():
                count = requests // rounds if level > 1 else requests // (4 * rounds)
                for _ in range(rounds):
                    for name, namespace in setups.items():
                        asyncio.run(client.run(namespace, count, by_setup[name], False, level))
    finally:
        lab.delete_sample(deployed)
        for namespace in ("bench-ssh", "bench-ssh-apps"):  # bench-relay*: up_and_down's
            cluster.delete(f"/api/v1/namespaces/{namespace}")
        cluster.delete(f"{WEBHOOK_API}/bench-bench-ssh")
    return {level: list(by_setup.values()) for level, by_setup in results.items()}


def up_and_down(lab: Lab, work: Path, cycles: int) -> dict[str, list[float]]:
    """``up --relay`` to ready, down by SIGTERM, and ``down`` after ``kill -9``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "WEBHOOK_DEV_STATE_DIR": str(work / "state")}
    up = up_argv(lab, "bench-relay", relay_flags())
    down = lab.workstation_argv(
        [sys.executable, "-m", "webhook_dev", "down", "--service", "bench-relay/sidecar-injector"]
    )
    figures: dict[str, list[float]] = {
        "up --relay to ready": [],
        "down (SIGTERM)": [],
        "down (kill -9, new process)": [],
    }
    for _ in range(cycles):
        started = time.monotonic()
        with process(up, "ready: kube-apiserver", env=env, cwd=REPO) as child:
            figures["up --relay to ready"].append(time.monotonic() - started)
            stopping = time.monotonic()
            os.killpg(child.pid, signal.SIGTERM)
            child.wait(60)
            figures["down (SIGTERM)"].append(time.monotonic() - stopping)
        with process(up, "ready: kube-apiserver", env=env, cwd=REPO) as child:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(30)
        stopping = time.monotonic()
        subprocess.run(down, env=env, cwd=REPO, check=True, capture_output=True)
        figures["down (kill -9, new process)"].append(time.monotonic() - stopping)
    cluster = Cluster.connect(kubeconfig=str(lab.host_kubeconfig))
    cluster.delete("/api/v1/namespaces/bench-relay")
    cluster.delete("/api/v1/namespaces/bench-relay-apps")
    cluster.delete(f"{WEBHOOK_API}/bench-bench-relay")
    return figures


def print_tables(results: dict[int, list[Samples]], figures: dict[str, list[float]]) -> None:
    for level, samples in results.items():
        baseline = next(r for r in samples if r.setup == "in-cluster")
        print(
            f"\nadmission round trip, dry-run Pod creates, concurrency {level}, "
            f"{len(baseline.latencies_ms)} calls per setup"
        )
        print(
            f"{'setup':12} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>8} {'>30ms':>6}   "
            "ratios to in-cluster (p50, p99, throughput)"
        )
        for result in samples:
            print(
                f"{result.setup:12} {result.percentile(0.5):8.2f} "
                f"{result.percentile(0.99):8.2f} {result.per_second:8.0f} {result.stalls:6d}   "
                f"x{result.percentile(0.5) / baseline.percentile(0.5):.2f}  "
                f"x{result.percentile(0.99) / baseline.percentile(0.99):.2f}  "
                f"x{result.per_second / baseline.per_second:.2f}"
            )
    print()
    for name, seconds in figures.items():
        shown = ", ".join(f"{s:.1f}" for s in seconds)
        print(f"{name:30} median {sorted(seconds)[len(seconds) // 2]:.1f} s  ({shown})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="per setup, all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=3, help="up/down cycles")
    args = parser.parse_args()
    for name, value in BENCH_ENV.items():
        os.environ.setdefault(name, value)
    try:
        lab, owned = Lab.attach(), False
        lab.wait_ready(timeout=20)
    except LabError:
        teardown()
        lab, owned = Lab.start(gateway_ports="clientspecified"), True
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="webhook-dev-relaybench-") as tmp:
            results = round_trips(lab, Path(tmp), args.requests, args.rounds)
            figures = up_and_down(lab, Path(tmp), args.cycles)
    finally:
        if owned:
            teardown()
    print_tables(results, figures)
    print(f"(measured in {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
