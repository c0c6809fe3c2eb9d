"""The SSH tunnel's own cost, without Kubernetes: OpenSSH ``ssh -N -R`` against our tunnel.

    sudo .venv/bin/python bench/tunnel_bench.py [--requests 2000] [--rounds 5]

On loopback, in ONE run, side by side, rounds alternating between them:

* ``direct``          — an HTTPS keep-alive client straight to the sample webhook served by
  aiohttp over TLS (what both tunnels below forward to);
* ``ssh -N -R``       — the same client through a private sshd (configured as the lab runs
  it, :func:`webhook_dev.lab.configs.sshd_config`) and OpenSSH's reverse forward;
* ``webhook-dev``     — the same, through :class:`webhook_dev.tunnel.ssh.SshTunnel` in a
  process of its own on webhook-dev's event loop (uvloop), exactly as ``up`` builds it.

So the only difference between the last two rows is the client end of the tunnel: the
figure ``bench/bench_up.py`` cannot separate from the proxy. Per setup: p50, p99, calls over
30 ms (the Nagle/delayed-ACK stall, docs/architecture.md), and CPU per call (the
scheduler's runtime from /proc) of the tunnel's client process and of sshd, steadier under
the machine's load than wall-clock figures. ``--compare-tree DIR`` adds the tunnel from another
checkout (before/after in one run). Needs root (sshd with its own config, whose
StrictModes refuses keys under a world-writable /tmp: the files go to /run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from bench_up import TUNNEL, cpu_seconds, descendants
from loop_bench import REPO, free_port, pod_review
from serve_bench import DIRECT_APP  # the sample under aiohttp's own TLS server

from webhook_dev.lab import configs
from webhook_dev.lab.ssh_keys import SSHKeyPair
from webhook_dev.tls.authority import LocalAuthority

STALL_MS = 30.0
LEVELS = (1, 16)
BASELINE = "ssh -N -R"


@dataclass
class Figures:
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    client_cpu: float = 0.0
    sshd_cpu: float = 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def load(
    url: str, body: bytes, count: int, concurrency: int, context: ssl.SSLContext, out: Figures
) -> None:
    connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        remaining = 0

        async def client(record: bool) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    await response.read()
                    if response.status != 200:
                        raise SystemExit(f"{url}: {response.status}")
                if record:
                    out.latencies_ms.append((time.perf_counter() - started) * 1000)

        remaining = 10 * concurrency  # warm-up: connections open, TLS done
        await asyncio.gather(*(client(False) for _ in range(concurrency)))
        remaining = count
        began = time.perf_counter()
        await asyncio.gather(*(client(True) for _ in range(concurrency)))
        out.seconds += time.perf_counter() - began


def wait_for_port(port: int, what: str) -> None:
    import socket

    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} never listened on port {port}")


def write_ssh_files(work: Path, sshd_port: int) -> tuple[Path, Path]:
    """sshd's config and keys, and a client config (``bench-master``) for both tunnels."""
    work.chmod(0o700)
    host, client = SSHKeyPair.create("bench host"), SSHKeyPair.create("bench client")
    (work / "host_key").write_bytes(host.private_openssh)
    (work / "host_key").chmod(0o600)
    (work / "id").write_bytes(client.private_openssh)
    (work / "id").chmod(0o600)
    (work / "authorized_keys").write_text(client.public_line + "\n")
    (work / "home").mkdir(mode=0o700)
    sshd_config = work / "sshd_config"
    sshd_config.write_text(
        configs.sshd_config(
            listen_address="127.0.0.1",
            port=sshd_port,
            host_key=str(work / "host_key"),
            authorized_keys=str(work / "authorized_keys"),
            pid_file=str(work / "sshd.pid"),
            gateway_ports="clientspecified",
            session_home=str(work / "home"),
        )
    )
    known = work / "known_hosts"
    known.write_text(
        configs.known_hosts_line(host="127.0.0.1", port=sshd_port, public_key_line=host.public_line)
    )
    ssh_dir = work / "home" / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    client_config = ssh_dir / "config"
    client_config.write_text(
        "\n".join(
            [
                "Host bench-master",
                "    HostName 127.0.0.1",
                f"    Port {sshd_port}",
                "    User root",
                f"    IdentityFile {work / 'id'}",
                "    IdentitiesOnly yes",
                f"    UserKnownHostsFile {known}",
                f"    GlobalKnownHostsFile {known}",
                "    BatchMode yes",
                "",
            ]
        )
    )
    return sshd_config, client_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per setup and round, conc. 16")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compare-tree", help="also run the tunnel from this checkout")
    parser.add_argument("--profile", help="cProfile our tunnel's process into this file")
    parser.add_argument(
        "--with-proxy",
        action="store_true",
        help="our tunnels forward to the serving stack in their own process, as `up` does",
    )
    args = parser.parse_args()
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="webhook-dev-tunnelbench-", dir="/run") as tmp:
        work = Path(tmp)
        sshd_port, backend_port = free_port(), free_port()
        sshd_config, client_config = write_ssh_files(work, sshd_port)
        authority = LocalAuthority.load_or_create(work / "ca")
        cert, key = authority.serving_files(
            "bench", dns_names=["localhost"], ip_addresses=["127.0.0.1"]
        )
        context = ssl.create_default_context(cafile=str(work / "ca" / "ca.crt"))
        body = json.dumps(pod_review()).encode()
        env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(work / "home")}

        def start(argv: list[str], **options: object) -> subprocess.Popen[bytes]:
            child = subprocess.Popen(argv, start_new_session=True, **options)  # type: ignore[call-overload]
            processes.append(child)
            return child

        try:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
            sshd = start(
                ["/usr/sbin/sshd", "-D", "-e", "-f", str(sshd_config)], stderr=subprocess.DEVNULL
            )
            start(
                [sys.executable, "-c", DIRECT_APP, str(backend_port), str(cert), str(key)],
                cwd=REPO,
                env=env,
            )
            wait_for_port(sshd_port, "sshd")
            wait_for_port(backend_port, "the sample")
            targets: dict[str, tuple[int, int | None]] = {"direct": (backend_port, None)}
            port = free_port()
            ssh = start(
                [
                    "ssh",
                    "-F",
                    str(client_config),
                    "-N",
                    "-R",
                    f"127.0.0.1:{port}:127.0.0.1:{backend_port}",
                    "bench-master",
                ]
            )
            targets[BASELINE] = (port, ssh.pid)
            trees = [("webhook-dev", str(REPO))]
            if args.compare_tree:
                trees.insert(0, ("before", args.compare_tree))
            # Our tunnels' local end: the shared sample, or (--with-proxy) a stack of their own.
            forward_to = ["proxy", str(cert), str(key)] if args.with_proxy else [str(backend_port)]
            for label, tree in trees:
                port = free_port()
                tunnel_env = dict(env, PYTHONPATH=tree)
                if args.profile and label == "webhook-dev":
                    tunnel_env["TUNNEL_BENCH_PROFILE"] = str(Path(args.profile).resolve())
                tunnel = start(
                    [
                        *(sys.executable, "-c", TUNNEL, "bench-master", "127.0.0.1"),
                        str(port),
                        *forward_to,
                    ],
                    cwd=tree,
                    env=tunnel_env,
                    stdout=subprocess.PIPE,
                )
                assert tunnel.stdout is not None
                if b"ready" not in tunnel.stdout.readline():
                    raise SystemExit(f"the {label} tunnel did not start")
                targets[label] = (port, tunnel.pid)
            for port, _ in targets.values():
                wait_for_port(port, "a tunnel")
            results = {(level, name): Figures() for level in LEVELS for name in targets}
            for _ in range(args.rounds):
                for level in LEVELS:
                    count = args.requests if level > 1 else args.requests // 4
                    for name, (port, pid) in targets.items():
                        figures = results[level, name]
                        sshd_pids = descendants(sshd.pid)
                        sshd_before = sum(map(cpu_seconds, sshd_pids))
                        client_before = cpu_seconds(pid) if pid else 0.0
                        url = f"https://127.0.0.1:{port}/mutate"
                        asyncio.run(load(url, body, count, level, context, figures))
                        figures.sshd_cpu += sum(map(cpu_seconds, sshd_pids)) - sshd_before
                        if pid:
                            figures.client_cpu += cpu_seconds(pid) - client_before
        finally:
            for child in reversed(processes):
                if child.poll() is None:
                    os.killpg(child.pid, signal.SIGTERM)
                    child.wait(10)
    print(
        f"review {len(body)} bytes; {args.rounds} rounds alternating between setups; "
        f"load average after {os.getloadavg()[0]:.1f}"
    )
    for level in LEVELS:
        base = results[level, BASELINE]
        print(f"\nconcurrency {level}, {len(base.latencies_ms)} calls per setup")
        print(
            f"{'setup':12} {'p50 ms':>7} {'p99 ms':>7} {'calls/s':>8} {'>30ms':>5}  "
            f"{'p50 x':>5} {'p99 x':>5}  {'tunnel CPU/call':>15} {'sshd CPU/call':>13}"
        )
        for name in targets:
            row = results[level, name]
            calls = len(row.latencies_ms)
            print(
                f"{name:12} {row.percentile(0.5):7.2f} {row.percentile(0.99):7.2f} "
                f"{calls / row.seconds:8.0f} {sum(v > STALL_MS for v in row.latencies_ms):5d}  "
                f"{row.percentile(0.5) / base.percentile(0.5):5.2f} "
                f"{row.percentile(0.99) / base.percentile(0.99):5.2f}  "
                f"{row.client_cpu / calls * 1e6:12.0f} us {row.sshd_cpu / calls * 1e6:10.0f} us"
            )


if __name__ == "__main__":
    main()
