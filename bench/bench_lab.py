"""Benchmark the lab: build time, warm start time, and the admission round trip.

    sudo .venv/bin/python bench/bench_lab.py [--requests 1000] [--starts 3] [--cold-build]

Round trip = server-side dry-run Pod creates (``?dryRun=All``), sent one at a time over
one keep-alive HTTPS connection from the root namespace, in four setups:

* ``no webhook``            — the baseline every other figure is a ratio against;
* ``webhook in master``     — a plain HTTPS webhook in the master namespace, via ClusterIP;
* ``ssh -R (no session)``   — the seed's manual technique: OpenSSH ``ssh -N -R`` from the
  workstation, webhook on the workstation's loopback;
* ``ssh -R + pty session``  — the same, with a pty session open on the SSH connection
  (``ssh -tt ... sleep``), which makes sshd set TCP_NODELAY (see docs/architecture.md, field notes).

Figures are printed as absolute values *and* ratios to the baseline measured in the same
run, since absolute numbers depend on the machine and its load. ``--cold-build`` also
builds every binary from scratch (empty Go build cache, separate output dir): tens of
minutes on two cores; the module download cache is reused.

It runs its own lab (prefix ``wdbench``, subnet 10.237.2.0/24), beside any other.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from webhook_dev.lab import Lab, teardown  # noqa: E402
from webhook_dev.lab.readiness import listening_addresses  # noqa: E402
from webhook_dev.tls import certs  # noqa: E402

WEBHOOK_SERVER = REPO / "tests" / "lab" / "webhook_server.py"
BENCH_ENV = {
    "WEBHOOK_DEV_LAB_PREFIX": "wdbench",
    "WEBHOOK_DEV_LAB_SUBNET": "10.237.2.0/24",
    "WEBHOOK_DEV_LAB_DIR": "/run/webhook-dev-lab-bench",
}
STALL_MS = 30.0


@dataclass
class RoundTrip:
    setup: str
    latencies_ms: list[float]
    seconds: float

    @property
    def per_second(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    @property
    def stalls(self) -> int:
        return sum(1 for value in self.latencies_ms if value > STALL_MS)


class DryRunClient:
    """Dry-run Pod creates over one persistent HTTPS connection (admin client cert)."""

    def __init__(self, lab: Lab) -> None:
        context = ssl.create_default_context(cafile=str(lab.ca_cert))
        context.load_cert_chain(
            str(lab.layout.client_cert("admin")), str(lab.layout.client_key("admin"))
        )
        self._connection = http.client.HTTPSConnection(
            lab.topology.master_host_ip, 6443, context=context, timeout=30
        )

    def create(self, namespace: str) -> dict[str, object]:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "bench-"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]},
        }
        self._connection.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/pods?dryRun=All",
            body=json.dumps(pod),
            headers={"Content-Type": "application/json"},
        )
        response = self._connection.getresponse()
        body = json.loads(response.read())
        if response.status != 201:
            raise RuntimeError(f"dry-run create failed: {response.status} {body}")
        return body  # type: ignore[no-any-return]

    def measure(self, setup: str, namespace: str, requests: int) -> RoundTrip:
        for _ in range(min(50, requests)):
            self.create(namespace)
        latencies = []
        started = time.perf_counter()
        for _ in range(requests):
            before = time.perf_counter()
            self.create(namespace)
            latencies.append((time.perf_counter() - before) * 1000)
        return RoundTrip(setup, latencies, time.perf_counter() - started)


def kubectl(lab: Lab, manifest: dict[str, object]) -> None:
    kubectl_path = lab.state.binaries.get("kubectl")
    if not kubectl_path:
        raise SystemExit("bench needs kubectl in the lab's binaries (webhook-dev lab build)")
    subprocess.run(
        [kubectl_path, "--kubeconfig", str(lab.host_kubeconfig), "apply", "-f", "-"],
        input=json.dumps(manifest),
        text=True,
        check=True,
        capture_output=True,
    )


def namespace_with_webhook(
    lab: Lab, name: str, endpoint_ip: str | None, port: int, ca_pem: bytes
) -> None:
    kubectl(lab, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    deadline = time.monotonic() + 30
    while (
        subprocess.run(
            [
                lab.state.binaries["kubectl"],
                "--kubeconfig",
                str(lab.host_kubeconfig),
                "-n",
                name,
                "get",
                "sa",
                "default",
            ],
            capture_output=True,
        ).returncode
        != 0
    ):
        if time.monotonic() > deadline:
            raise SystemExit(f"no default service account in {name}")
        time.sleep(0.1)
    if endpoint_ip is None:
        return
    kubectl(
        lab,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "webhook", "namespace": name},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
        },
    )
    kubectl(
        lab,
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "webhook", "namespace": name},
            "subsets": [
                {"addresses": [{"ip": endpoint_ip}], "ports": [{"name": "https", "port": port}]}
            ],
        },
    )
    kubectl(
        lab,
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": f"{name}-bench"},
            "webhooks": [
                {
                    "name": "pods.bench.webhook-dev.io",
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "failurePolicy": "Fail",
                    "timeoutSeconds": 10,
                    "clientConfig": {
                        "service": {
                            "namespace": name,
                            "name": "webhook",
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
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}},
                }
            ],
        },
    )


def wait_mutating(client: DryRunClient, namespace: str, tag: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            labels = client.create(namespace)["metadata"]  # type: ignore[index]
            if labels.get("labels", {}).get("webhook-dev.io/mutated-by") == tag:  # type: ignore[union-attr]
                return
        except (RuntimeError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"the {tag} webhook never answered in {namespace}")


@contextmanager
def process(argv: list[str], ready_line: str | None = None) -> Iterator[subprocess.Popen[str]]:
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        if ready_line:
            assert child.stdout is not None
            while ready_line not in (line := child.stdout.readline()):
                if not line:
                    raise SystemExit(f"{argv[:3]} exited before {ready_line!r}")
        yield child
    finally:
        child.terminate()
        child.wait(timeout=10)


def bench_starts(count: int) -> list[tuple[float, float]]:
    """(lab up seconds, lab down seconds), through the CLI as a user runs it."""
    env = {**os.environ, **BENCH_ENV}
    figures = []
    for _ in range(count):
        subprocess.run(
            [sys.executable, "-m", "webhook_dev", "lab", "down"], env=env, capture_output=True
        )
        started = time.perf_counter()
        subprocess.run(
            # The control plane's start, as before the node (bench_node.py times the node).
            [sys.executable, "-m", "webhook_dev", "lab", "up", "--no-build", "--no-node"],
            env=env,
            check=True,
            capture_output=True,
        )
        up_seconds = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "webhook_dev", "lab", "down"],
            env=env,
            check=True,
            capture_output=True,
        )
        figures.append((up_seconds, time.perf_counter() - started))
    return figures


def bench_cold_build() -> float:
    """Seconds to build every binary with an empty Go build cache into a scratch dir."""
    scratch = Path(tempfile.mkdtemp(prefix="webhook-dev-cold-"))
    env = {
        **os.environ,
        "GOCACHE": str(scratch / "gocache"),
        "WEBHOOK_DEV_CACHE_DIR": str(scratch / "cache"),
    }
    started = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-m", "webhook_dev", "lab", "build"], env=env, check=True)
        return time.perf_counter() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def bench_round_trips(requests: int) -> list[RoundTrip]:
    os.environ.update(BENCH_ENV)
    teardown()
    lab = Lab.start(gateway_ports="yes", with_node=False)  # admission only: no node needed
    try:
        client = DryRunClient(lab)
        ca = certs.new_ca("bench-ca")
        results = [RoundTrip("no webhook", [], 1.0)]
        namespace_with_webhook(lab, "bench-none", None, 0, b"")
        results[0] = client.measure("no webhook", "bench-none", requests)

        workdir = Path(tempfile.mkdtemp(prefix="webhook-dev-bench-"))
        try:

            def serving(namespace: str) -> list[str]:
                issued = certs.new_serving_cert(ca, dns_names=[f"webhook.{namespace}.svc"])
                cert, key = workdir / f"{namespace}.crt", workdir / f"{namespace}.key"
                cert.write_bytes(issued.cert_pem)
                key.write_bytes(issued.key_pem)
                return ["--cert", str(cert), "--key", str(key)]

            master = [
                "--host",
                lab.master_ip,
                "--port",
                "18443",
                "--tag",
                "master",
                *serving("bench-master"),
            ]
            with process(
                lab.master_argv([sys.executable, str(WEBHOOK_SERVER), *master]), "listening"
            ):
                namespace_with_webhook(lab, "bench-master", lab.master_ip, 18443, ca.cert_pem)
                wait_mutating(client, "bench-master", "master")
                results.append(client.measure("webhook in master", "bench-master", requests))

            for setup, session in (("ssh -R (no session)", False), ("ssh -R + pty session", True)):
                namespace = "bench-ssh-pty" if session else "bench-ssh"
                local = [
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "8443",
                    "--tag",
                    "workstation",
                    *serving(namespace),
                ]
                forward = ["-R", f"{lab.master_ip}:19443:127.0.0.1:8443"]
                ssh = (
                    ["ssh", "-tt", *forward, lab.ssh_destination, "sleep", "3600"]
                    if session
                    else ["ssh", "-N", *forward, lab.ssh_destination]
                )
                with (
                    process(
                        lab.workstation_argv([sys.executable, str(WEBHOOK_SERVER), *local]),
                        "listening",
                    ),
                    process(lab.workstation_argv(ssh)),
                ):
                    deadline = time.monotonic() + 15
                    while not listening_addresses(lab.master_ns, 19443):
                        if time.monotonic() > deadline:
                            raise SystemExit("ssh -R never listened")
                        time.sleep(0.1)
                    namespace_with_webhook(lab, namespace, lab.master_ip, 19443, ca.cert_pem)
                    wait_mutating(client, namespace, "workstation")
                    results.append(client.measure(setup, namespace, requests))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return results
    finally:
        teardown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--cold-build", action="store_true")
    args = parser.parse_args()

    if args.cold_build:
        print(f"cold build (empty Go build cache): {bench_cold_build() / 60:.1f} min")

    starts = bench_starts(args.starts)
    ups = [up for up, _ in starts]
    downs = [down for _, down in starts]
    print(
        f"warm start, `lab up` (cached binaries), {len(ups)} runs: "
        f"median {statistics.median(ups):.1f}s, max {max(ups):.1f}s; "
        f"`lab down`: median {statistics.median(downs):.1f}s"
    )

    results = bench_round_trips(args.requests)
    baseline = results[0]
    print(
        f"\nadmission round trip: {args.requests} sequential server-side dry-run Pod "
        f"creates per setup"
    )
    print(
        f"{'setup':24} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {f'>{STALL_MS:.0f}ms':>6}"
        f"  {'req/s ratio':>11} {'p50 ratio':>9} {'p99 ratio':>9}"
    )
    for result in results:
        print(
            f"{result.setup:24} {result.per_second:8.0f} {result.percentile(0.5):8.2f} "
            f"{result.percentile(0.99):8.2f} {result.stalls:6d}  "
            f"{result.per_second / baseline.per_second:11.2f} "
            f"{result.percentile(0.5) / baseline.percentile(0.5):9.2f} "
            f"{result.percentile(0.99) / baseline.percentile(0.99):9.2f}"
        )


if __name__ == "__main__":
    main()
