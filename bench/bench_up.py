"""Benchmark ``webhook-dev up`` on a lab of its own: round trips, up-to-ready, down.

    sudo .venv/bin/python bench/bench_up.py [--requests 3000] [--rounds 3] [--cycles 3]

Admission round trip = server-side dry-run Pod creates (``?dryRun=All``) at concurrency 16,
from the root namespace, each admitted by the sidecar-injector sample, in three setups
running side by side (each in its own namespace, rounds alternating between them):

* ``direct``       — the sample served with plain aiohttp+TLS inside the master namespace;
* ``manual ssh -R`` — the seed's technique: OpenSSH ``ssh -N -R`` from the workstation to
  the same sample served with plain aiohttp+TLS on the workstation's loopback;
* ``webhook-dev``   — ``webhook-dev up`` with the sample: asyncssh tunnel, TLS proxy,
  recording off, worker process.

Figures are ratios against ``manual ssh -R`` measured in the same run (the goal: p50 and p99
within 1.3x), plus the count of calls over 30 ms ("stalls": the Nagle/delayed-ACK
signature, see docs/architecture.md, field notes). Then ``up``-to-ready (process start to
the ``ready`` line, probe included) and ``down`` (SIGTERM to exit, restore included; and a separate
``webhook-dev down`` after ``kill -9``), over ``--cycles`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from webhook_dev.kube.cluster import Cluster  # noqa: E402
from webhook_dev.lab import Lab, teardown  # noqa: E402
from webhook_dev.tls import certs  # noqa: E402

BENCH_ENV = {
    "WEBHOOK_DEV_LAB_PREFIX": "wdupb",
    "WEBHOOK_DEV_LAB_SUBNET": "10.237.3.0/24",
    "WEBHOOK_DEV_LAB_DIR": "/run/webhook-dev-lab-upbench",
}
CONCURRENCY = 16
STALL_MS = 30.0
SERVE_SAMPLE = """
import ssl, sys
from aiohttp import web
from sample_webhook.sidecar_injector import create_app
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(sys.argv[3], sys.argv[4])
print("listening", flush=True)
web.run_app(create_app(), host=sys.argv[1], port=int(sys.argv[2]), ssl_context=context,
            access_log=None, print=None)
"""


@dataclass
class Samples:
    setup: str
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def per_second(self) -> float:
        return len(self.latencies_ms) / self.seconds

    @property
    def stalls(self) -> int:
        return sum(1 for value in self.latencies_ms if value > STALL_MS)


@contextmanager
def process(
    argv: list[str], ready: str | None = None, **options: object
) -> Iterator[subprocess.Popen[str]]:
    child = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **options,
    )  # type: ignore[call-overload]
    try:
        if ready:
            wait_line(child, ready)
        # Keep reading: a child whose output pipe fills up blocks on its next line.
        threading.Thread(target=child.stdout.read, daemon=True).start()  # type: ignore[union-attr]
        yield child
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)


def wait_line(child: subprocess.Popen[str], text: str, timeout: float = 120) -> str:
    assert child.stdout is not None
    deadline = time.monotonic() + timeout
    for line in child.stdout:
        if text in line:
            return line
        if time.monotonic() > deadline:
            break
    raise SystemExit(f"never saw {text!r} (exit {child.poll()})")


def webhook_objects(
    cluster: Cluster, namespace: str, ca_pem: bytes, endpoint: tuple[str, int] | None
) -> None:
    """Namespace, Service (selectorless + Endpoints when ``endpoint``), webhook config."""
    import base64

    cluster.create(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
    )
    spec: dict[str, object] = {"ports": [{"name": "https", "port": 443, "targetPort": 8443}]}
    if endpoint is None:
        spec["selector"] = {"app": "sidecar-injector"}
    cluster.create(
        f"/api/v1/namespaces/{namespace}/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "sidecar-injector"},
            "spec": spec,
        },
    )
    if endpoint is not None:
        cluster.create(
            f"/api/v1/namespaces/{namespace}/endpoints",
            {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": "sidecar-injector"},
                "subsets": [
                    {
                        "addresses": [{"ip": endpoint[0]}],
                        "ports": [{"name": "https", "port": endpoint[1]}],
                    }
                ],
            },
        )
    cluster.create(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": f"bench-{namespace}"},
            "webhooks": [
                {
                    "name": "sidecar.bench.webhook-dev.io",
                    "clientConfig": {
                        "service": {
                            "namespace": namespace,
                            "name": "sidecar-injector",
                            "path": "/mutate",
                            "port": 443,
                        },
                        "caBundle": base64.b64encode(ca_pem).decode(),
                    },
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ],
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": namespace}
                    },
                    "failurePolicy": "Fail",
                    "timeoutSeconds": 10,
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                }
            ],
        },
    )


class LoadClient:
    """Dry-run Pod creates at a fixed concurrency, with the lab's admin client certificate."""

    def __init__(self, lab: Lab) -> None:
        self.base = f"https://{lab.topology.master_host_ip}:6443"
        self.context = ssl.create_default_context(cafile=str(lab.ca_cert))
        self.context.load_cert_chain(
            str(lab.layout.client_cert("admin")), str(lab.layout.client_key("admin"))
        )

    async def run(
        self, namespace: str, count: int, samples: Samples, check: bool, concurrency: int
    ) -> None:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "bench-"},
            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
        }
        url = f"{self.base}/api/v1/namespaces/{namespace}/pods?dryRun=All"
        connector = aiohttp.TCPConnector(ssl=self.context, limit=concurrency)
        remaining = count
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    started = time.perf_counter()
                    async with session.post(url, json=pod) as response:
                        body = await response.json()
                    samples.latencies_ms.append((time.perf_counter() - started) * 1000)
                    if response.status != 201:
                        raise SystemExit(f"{namespace}: {response.status} {body}")
                    if check and len(body["spec"]["containers"]) != 2:
                        raise SystemExit(f"{namespace}: the webhook did not mutate the Pod")

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            samples.seconds += time.perf_counter() - started


NO_INSPECTOR = ("--no-inspector",)  # the transport benches measure the path alone


def up_argv(
    lab: Lab,
    namespace: str = "bench-webhook-dev",
    transport: Sequence[str] | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """``webhook-dev up`` for a bench Service in ``namespace``, in the workstation namespace:
    through ``--ssh`` to the lab's master unless ``transport`` names another."""
    return lab.workstation_argv(
        [
            sys.executable,
            "-m",
            "webhook_dev",
            "up",
            "--service",
            f"{namespace}/sidecar-injector",
            *(transport if transport is not None else ["--ssh", lab.ssh_destination]),
            "--app",
            "sample_webhook.sidecar_injector",
            "--no-record",
            "--no-reload",
            *extra,
        ]
    )


def round_trips(lab: Lab, work: Path, requests: int, rounds: int) -> dict[int, list[Samples]]:
    """Samples per concurrency (16 as the issue asks, and 1 to see each call's own cost)."""
    cluster = Cluster.connect(kubeconfig=str(lab.host_kubeconfig))
    ca = certs.new_ca("bench CA")
    python = [sys.executable, "-c", SERVE_SAMPLE]

    def serving(namespace: str) -> list[str]:
        issued = certs.new_serving_cert(
            ca, dns_names=certs.service_dns_names("sidecar-injector", namespace)
        )
        cert, key = work / f"{namespace}.crt", work / f"{namespace}.key"
        cert.write_bytes(issued.cert_pem)
        key.write_bytes(issued.key_pem)
        return [str(cert), str(key)]

    direct_port, manual_port, local_port = 18443, 19443, 28443
    env = {**os.environ, "PYTHONPATH": str(REPO), "WEBHOOK_DEV_STATE_DIR": str(work / "state")}
    webhook_objects(cluster, "bench-direct", ca.cert_pem, (lab.master_ip, direct_port))
    webhook_objects(cluster, "bench-manual", ca.cert_pem, (lab.master_ip, manual_port))
    webhook_objects(cluster, "bench-webhook-dev", ca.cert_pem, None)
    direct = lab.master_argv([*python, lab.master_ip, str(direct_port), *serving("bench-direct")])
    local = lab.workstation_argv([*python, "127.0.0.1", str(local_port), *serving("bench-manual")])
    ssh = lab.workstation_argv(
        [
            "ssh",
            "-N",
            "-R",
            f"{lab.master_ip}:{manual_port}:127.0.0.1:{local_port}",
            lab.ssh_destination,
        ]
    )
    up = up_argv(lab)
    client = LoadClient(lab)
    setups = {
        "direct": "bench-direct",
        "manual ssh -R": "bench-manual",
        "webhook-dev": "bench-webhook-dev",
    }
    results = {level: {name: Samples(name) for name in setups} for level in (CONCURRENCY, 1)}
    with (
        process(direct, "listening", env=env),
        process(local, "listening", env=env),
        process(ssh, env=env),
        process(up, "ready: kube-apiserver", env=env, cwd=REPO),
    ):
        time.sleep(1.0)  # ssh -R has no ready line; its forward is up within a few ms
        for namespace in setups.values():  # warm up, and prove every path mutates
            asyncio.run(client.run(namespace, 200, Samples("warm-up"), True, CONCURRENCY))
        for level, by_setup in results.items():
            count = requests // rounds if level > 1 else requests // (4 * rounds)
            for _ in range(rounds):
                for name, namespace in setups.items():
                    asyncio.run(client.run(namespace, count, by_setup[name], False, level))
    return {level: list(by_setup.values()) for level, by_setup in results.items()}


def up_and_down(lab: Lab, work: Path, cycles: int) -> dict[str, list[float]]:
    """up-to-ready, down by SIGTERM, and `down` from another process after kill -9."""
    env = {**os.environ, "WEBHOOK_DEV_STATE_DIR": str(work / "state")}
    return time_up_and_down(lab, up_argv(lab), "bench-webhook-dev/sidecar-injector", env, cycles)


def time_up_and_down(
    lab: Lab,
    up: list[str],
    service: str,
    env: dict[str, str],
    cycles: int,
    label: str = "up",
) -> dict[str, list[float]]:
    """``up`` (argv ``up``) to ready, down by SIGTERM, and ``down --service`` from another
    process after ``kill -9``, ``cycles`` times each."""
    down = lab.workstation_argv([sys.executable, "-m", "webhook_dev", "down", "--service", service])
    figures: dict[str, list[float]] = {
        f"{label} to ready": [],
        "down (SIGTERM)": [],
        "down (kill -9, new process)": [],
    }
    for _ in range(cycles):
        started = time.monotonic()
        with process(up, "ready: kube-apiserver", env=env, cwd=REPO) as child:
            figures[f"{label} to ready"].append(time.monotonic() - started)
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
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="per setup, all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=3, help="up/down cycles")
    args = parser.parse_args()
    os.environ.update(BENCH_ENV)
    teardown()
    lab = Lab.start(gateway_ports="clientspecified")
    try:
        with tempfile.TemporaryDirectory(prefix="webhook-dev-upbench-") as tmp:
            work = Path(tmp)
            results = round_trips(lab, work, args.requests, args.rounds)
            timings = up_and_down(lab, work, args.cycles)
    finally:
        teardown()

    for level, samples in results.items():
        baseline = next(r for r in samples if r.setup == "manual ssh -R")
        print(
            f"\nadmission round trip, dry-run Pod creates, concurrency {level}, "
            f"{len(baseline.latencies_ms)} calls per setup in {args.rounds} alternating rounds"
        )
        print(
            f"{'setup':16} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>8} {'>30ms':>6}   "
            "ratios to manual ssh -R (p50, p99, throughput)"
        )
        for result in samples:
            print(
                f"{result.setup:16} {result.percentile(0.5):8.2f} "
                f"{result.percentile(0.99):8.2f} {result.per_second:8.0f} {result.stalls:6d}   "
                f"x{result.percentile(0.5) / baseline.percentile(0.5):.2f}  "
                f"x{result.percentile(0.99) / baseline.percentile(0.99):.2f}  "
                f"x{result.per_second / baseline.per_second:.2f}"
            )
    print(f"\nup/down over {args.cycles} cycles (seconds; goals: up <= 3, down <= 2)")
    for name, values in timings.items():
        print(f"{name:30} median {statistics.median(values):5.2f}  max {max(values):5.2f}")


if __name__ == "__main__":
    main()
