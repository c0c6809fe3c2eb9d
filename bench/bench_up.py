"""Benchmark ``webhook-dev up`` on a lab of its own: round trips, up-to-ready, down.

    sudo .venv/bin/python bench/bench_up.py [--requests 3000] [--rounds 3] [--cycles 3]
        [--compare-tree DIR] [--lab-prefix P --lab-subnet CIDR --lab-dir DIR]

Admission round trip = server-side dry-run Pod creates (``?dryRun=All``) at concurrency 16
and 1, from the root namespace, each admitted by the sidecar-injector sample, in three setups
running side by side (each in its own namespace, rounds alternating between them):

* ``direct``       — the sample served with plain aiohttp+TLS inside the master namespace;
* ``manual ssh -R`` — the seed's technique: OpenSSH ``ssh -N -R`` from the workstation to
  the same sample served with plain aiohttp+TLS on the workstation's loopback;
* ``our tunnel``    — the manual setup with webhook-dev's tunnel (``SshTunnel``, on uvloop,
  in a process of its own) in place of ``ssh -N -R``: the tunnel's share, apart from the
  proxy's;
* ``webhook-dev``   — ``webhook-dev up`` with the sample: asyncssh tunnel, TLS proxy,
  recording off, worker process;
* ``before``        — with ``--compare-tree DIR``: ``up`` from another checkout (e.g. the
  commit before a change), so before/after come from one run on one lab.

Figures are ratios against ``manual ssh -R`` measured in the same run (issue 14's goal: p50
and p99 within x1.15 at both concurrencies), the count of calls over 30 ms ("stalls": the
Nagle/delayed-ACK signature, see docs/architecture.md, field notes), and CPU per call (the
scheduler's runtime from /proc, steadier under the machine's load than wall time) of the
setup's workstation-side processes (ssh and the sample; ``up`` and its worker) and of the
master's sshd. Then
``up``-to-ready (process start to the ``ready`` line, probe included) and ``down``
(SIGTERM to exit, restore included; and a separate ``webhook-dev down`` after ``kill -9``),
over ``--cycles`` runs.

The lab's identity defaults to the bench's own (``BENCH_ENV``); the ``--lab-*`` options give
another, e.g. a helper's own, so two benches never share a lab. The lab is torn down at the
start and at the end: never point them at a lab in use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


# webhook-dev's SSH tunnel alone, as ``up`` builds it (on uvloop), in a process of its own:
# argv destination, master address, remote port, local port. Also bench/tunnel_bench.py's,
# whose --with-proxy passes "proxy CERT KEY" for the local port: then the process also runs
# the serving stack (proxy and worker, no recording) and forwards to it, as ``up`` does.
TUNNEL = """
import asyncio, os, signal, sys
from webhook_dev.commands.event_loop import run
from webhook_dev.tunnel.ssh import SshSpec, SshTunnel

if os.environ.get("TUNNEL_BENCH_PROFILE"):  # cProfile until SIGTERM
    import cProfile
    profile = cProfile.Profile()
    def stop(*_):
        profile.disable()
        profile.dump_stats(os.environ["TUNNEL_BENCH_PROFILE"])
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    profile.enable()

async def main():
    destination, master, remote, local = sys.argv[1:5]
    if local == "proxy":
        from pathlib import Path
        from webhook_dev.serving.spec import ServingSpec
        from webhook_dev.serving.stack import ServingStack
        spec = ServingSpec(app="sample_webhook.sidecar_injector", reload=False, inspector=False)
        stack = ServingStack.from_spec(
            spec, port=0, cert_file=Path(sys.argv[5]), key_file=Path(sys.argv[6])
        )
        await stack.start()
        local = stack.port
    tunnel = SshTunnel(SshSpec(destination, remote_port=int(remote), master_address=master))
    await tunnel.carry(int(local))
    print("ready", flush=True)
    await asyncio.Event().wait()

run(main())
"""


def cpu_seconds(pid: int) -> float:
    """CPU time of one process so far, all its threads (0 once it is gone): the scheduler's
    nanosecond runtime (/proc/PID/task/*/schedstat), not the 10 ms ticks of utime+stime."""
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a worker; sshd's per-connection children)."""
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        found.extend(map(int, children))
        frontier.extend(map(int, children))
    return found


def tree_cpu(pids: Sequence[int]) -> float:
    return sum(cpu_seconds(pid) for root in pids for pid in descendants(root))


@dataclass
class Samples:
    setup: str
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    workstation_cpu: float = 0.0  # the setup's own processes (see round_trips)
    sshd_cpu: float = 0.0

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


def round_trips(
    lab: Lab, work: Path, requests: int, rounds: int, compare_tree: str | None = None
) -> dict[int, list[Samples]]:
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

    direct_port, manual_port, local_port, tunnel_port = 18443, 19443, 28443, 20443
    env = {**os.environ, "PYTHONPATH": str(REPO), "WEBHOOK_DEV_STATE_DIR": str(work / "state")}
    webhook_objects(cluster, "bench-direct", ca.cert_pem, (lab.master_ip, direct_port))
    webhook_objects(cluster, "bench-manual", ca.cert_pem, (lab.master_ip, manual_port))
    webhook_objects(cluster, "bench-tunnel", ca.cert_pem, (lab.master_ip, tunnel_port))
    webhook_objects(cluster, "bench-webhook-dev", ca.cert_pem, None)
    if compare_tree:
        webhook_objects(cluster, "bench-before", ca.cert_pem, None)
    direct = lab.master_argv([*python, lab.master_ip, str(direct_port), *serving("bench-direct")])
    # One sample on the workstation for both tunnels: the Service names differ, so its
    # certificate names both.
    issued = certs.new_serving_cert(
        ca,
        dns_names=[
            *certs.service_dns_names("sidecar-injector", "bench-manual"),
            *certs.service_dns_names("sidecar-injector", "bench-tunnel"),
        ],
    )
    (work / "local.crt").write_bytes(issued.cert_pem)
    (work / "local.key").write_bytes(issued.key_pem)
    local = lab.workstation_argv(
        [*python, "127.0.0.1", str(local_port), str(work / "local.crt"), str(work / "local.key")]
    )
    ours = lab.workstation_argv(
        [
            sys.executable,
            "-c",
            TUNNEL,
            lab.ssh_destination,
            lab.master_ip,
            str(tunnel_port),
            str(local_port),
        ]
    )
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
        "our tunnel": "bench-tunnel",
        "webhook-dev": "bench-webhook-dev",
    }
    if compare_tree:
        setups["before"] = "bench-before"
    results = {level: {name: Samples(name) for name in setups} for level in (CONCURRENCY, 1)}
    with contextlib.ExitStack() as stack:
        sample = stack.enter_context(process(local, "listening", env=env)).pid
        pids = {
            "direct": [stack.enter_context(process(direct, "listening", env=env)).pid],
            "manual ssh -R": [sample, stack.enter_context(process(ssh, env=env)).pid],
            "our tunnel": [
                sample,
                stack.enter_context(process(ours, "ready", env=env, cwd=REPO)).pid,
            ],
            "webhook-dev": [
                stack.enter_context(process(up, "ready: kube-apiserver", env=env, cwd=REPO)).pid
            ],
        }
        if compare_tree:
            before_env = {
                **env,
                "PYTHONPATH": compare_tree,
                "WEBHOOK_DEV_STATE_DIR": str(work / "state-before"),
            }
            before = up_argv(lab, "bench-before")
            started = process(before, "ready: kube-apiserver", env=before_env, cwd=compare_tree)
            pids["before"] = [stack.enter_context(started).pid]
        time.sleep(1.0)  # ssh -R has no ready line; its forward is up within a few ms
        for namespace in setups.values():  # warm up, and prove every path mutates
            asyncio.run(client.run(namespace, 200, Samples("warm-up"), True, CONCURRENCY))
        sshd = [lab.state.pids["sshd"]]
        for level, by_setup in results.items():
            count = requests // rounds if level > 1 else requests // (4 * rounds)
            for _ in range(rounds):
                for name, namespace in setups.items():
                    samples = by_setup[name]
                    own, master = tree_cpu(pids[name]), tree_cpu(sshd)
                    asyncio.run(client.run(namespace, count, samples, False, level))
                    samples.workstation_cpu += tree_cpu(pids[name]) - own
                    samples.sshd_cpu += tree_cpu(sshd) - master
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
    parser.add_argument("--compare-tree", help="also run `up` from this checkout ('before')")
    parser.add_argument("--lab-prefix", default=BENCH_ENV["WEBHOOK_DEV_LAB_PREFIX"])
    parser.add_argument("--lab-subnet", default=BENCH_ENV["WEBHOOK_DEV_LAB_SUBNET"])
    parser.add_argument("--lab-dir", default=BENCH_ENV["WEBHOOK_DEV_LAB_DIR"])
    args = parser.parse_args()
    os.environ.update(
        {
            "WEBHOOK_DEV_LAB_PREFIX": args.lab_prefix,
            "WEBHOOK_DEV_LAB_SUBNET": args.lab_subnet,
            "WEBHOOK_DEV_LAB_DIR": args.lab_dir,
        }
    )
    compare_tree = str(Path(args.compare_tree).resolve()) if args.compare_tree else None
    teardown()
    lab = Lab.start(gateway_ports="clientspecified")
    try:
        with tempfile.TemporaryDirectory(prefix="webhook-dev-upbench-") as tmp:
            work = Path(tmp)
            results = round_trips(lab, work, args.requests, args.rounds, compare_tree)
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
            "ratios to manual ssh -R (p50, p99, throughput)   CPU/call: own, sshd"
        )
        for result in samples:
            calls = len(result.latencies_ms)
            print(
                f"{result.setup:16} {result.percentile(0.5):8.2f} "
                f"{result.percentile(0.99):8.2f} {result.per_second:8.0f} {result.stalls:6d}   "
                f"x{result.percentile(0.5) / baseline.percentile(0.5):.2f}  "
                f"x{result.percentile(0.99) / baseline.percentile(0.99):.2f}  "
                f"x{result.per_second / baseline.per_second:.2f}"
                f"{result.workstation_cpu / calls * 1e6:14.0f} us "
                f"{result.sshd_cpu / calls * 1e6:5.0f} us"
            )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"\nup/down over {args.cycles} cycles (seconds; goals: up <= 3, down <= 2)")
    for name, values in timings.items():
        print(f"{name:30} median {statistics.median(values):5.2f}  max {max(values):5.2f}")


if __name__ == "__main__":
    main()
