"""RSS of ``serve`` over 10,000 TLS connect-and-close, on uvloop and on stock asyncio (issue 15).

Starts ``webhook-dev serve`` (the sidecar sample, no recording), opens ``--connections``
TLS connections from ``--clients`` threads — each does the handshake, and every
``--call-every``-th also sends one AdmissionReview — closes them, and prints the serve
process's RSS (with its children's, the workers, separately) every ``--step`` connections.
Bounded by count; the loop is chosen by hiding uvloop (``--loop asyncio``) from the
serve process, so the same script measures an older tree (``PYTHONPATH=<tree>``) too::

    python bench/tls_connections_bench.py --loop uvloop
    python bench/tls_connections_bench.py --loop asyncio

The figures go in docs/benchmarks.md as ratios of the last RSS to the first (after
warm-up), measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REVIEW = json.dumps(
    {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "default",
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web-0"},
                "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            },
        },
    }
).encode()


def padded_review(kib: int) -> bytes:
    """REVIEW with the Pod grown to about ``kib`` KiB by annotations, as real Pods are
    (managedFields, last-applied configuration): what the inspector's ring holds."""
    if kib <= 0:
        return REVIEW
    review = json.loads(REVIEW)
    review["request"]["object"]["metadata"]["annotations"] = {
        f"example.com/note-{number}": "x" * 100 for number in range(kib * 1024 // 130)
    }
    return json.dumps(review).encode()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--step", type=int, default=1000)
    parser.add_argument("--call-every", type=int, default=10)
    parser.add_argument(
        "--mode",
        choices=("full", "mixed", *MODES[1:]),
        default="mixed",
        help="how connections end: a full handshake, or a mix of the ways a fuzzer leaves",
    )
    parser.add_argument("--review-kib", type=int, default=0, help="grow each review to this")
    parser.add_argument(
        "--as-a-user-runs-it",
        action="store_true",
        help="with the inspector and a recording, as `serve APP` runs by default",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, WEBHOOK_DEV_STATE_DIR=f"{tmp}/state", PYTHONUNBUFFERED="1")
        if args.loop == "asyncio":
            hide = Path(tmp, "hide-uvloop", "uvloop")
            hide.mkdir(parents=True)
            (hide / "__init__.py").write_text("raise ImportError('hidden by the benchmark')\n")
            env["PYTHONPATH"] = os.pathsep.join(
                [str(hide.parent), *filter(None, [env.get("PYTHONPATH")])]
            )
        serve = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "webhook_dev",
                "serve",
                "sample_webhook.sidecar_injector",
                "--port",
                "0",
                "--no-reload",
                *(
                    ["--record", f"{tmp}/rec.jsonl"]
                    if args.as_a_user_runs_it
                    else ["--no-record", "--no-inspector"]
                ),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            port = serve_port(serve)
            context = ssl.create_default_context(cafile=f"{tmp}/state/ca/ca.crt")
            print(json.dumps({"loop": args.loop, **_measure(serve.pid, port, context, args)}))
        finally:
            serve.terminate()
            serve.wait(30)


def serve_port(serve: subprocess.Popen[str]) -> int:
    """The port ``serve --port 0`` printed; its later output is drained so it never blocks."""
    assert serve.stdout is not None
    for line in serve.stdout:
        match = re.match(r"serving https://127\.0\.0\.1:(\d+)", line)
        if match:
            threading.Thread(target=lambda: [None for _ in serve.stdout or ()], daemon=True).start()
            return int(match.group(1))
    raise SystemExit("serve did not start")


def _measure(
    pid: int, port: int, context: ssl.SSLContext, args: argparse.Namespace
) -> dict[str, object]:
    done = 0
    failed = 0
    lock = threading.Lock()
    per_client = args.connections // args.clients
    untrusted = ssl.create_default_context()  # does not trust webhook-dev's CA
    review = padded_review(args.review_kib)

    def client(offset: int) -> None:
        nonlocal done, failed
        for number in range(per_client):
            mode = args.mode if args.mode != "mixed" else MODES[(number + offset) % len(MODES)]
            try:
                raw = socket.create_connection(("127.0.0.1", port), timeout=30)
                if mode != "full":
                    _odd_close(raw, mode, untrusted)
                    continue
                with raw, context.wrap_socket(raw, server_hostname="localhost") as tls:
                    if (number + offset) % args.call_every == 0:
                        tls.sendall(
                            b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: "
                            b"application/json\r\nContent-Length: "
                            + str(len(review)).encode()
                            + b"\r\n\r\n"
                            + review
                        )
                        tls.recv(65536)
            except OSError:
                with lock:
                    failed += 1
            finally:
                with lock:
                    done += 1

    samples: list[tuple[int, int]] = [(0, rss_kib(pid))]
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    next_step = args.step
    while any(thread.is_alive() for thread in threads):
        time.sleep(0.05)
        with lock:
            count = done
        if count >= next_step:
            samples.append((count, rss_kib(pid)))
            next_step += args.step
    with lock:
        count = done
    if samples[-1][0] != count:
        samples.append((count, rss_kib(pid)))
    time.sleep(1)
    after_idle = rss_kib(pid)
    first = samples[1][1] if len(samples) > 1 else samples[0][1]
    return {
        "connections": count,
        "failed": failed,
        "seconds": round(time.monotonic() - started, 1),
        "rss_mib": [(n, round(kib / 1024, 1)) for n, kib in samples],
        "rss_after_idle_mib": round(after_idle / 1024, 1),
        "growth_after_first_step_mib": round((samples[-1][1] - first) / 1024, 1),
        "ratio_last_to_first_step": round(samples[-1][1] / first, 2),
    }


MODES = ("full", "reset", "half", "untrusted", "silent")


def _odd_close(raw: socket.socket, mode: str, untrusted: ssl.SSLContext) -> None:
    """How a fuzzer or a flaky client leaves: RST after the handshake, half a ClientHello,
    a client refusing the certificate, a TCP connection that never speaks."""
    with raw:
        if mode == "reset":
            with UncheckedTls(raw) as tls:
                linger_zero = struct.pack("ii", 1, 0)  # close with RST
                tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_zero)
        elif mode == "half":
            raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40)
        elif mode == "untrusted":
            with contextlib.suppress(ssl.SSLError):
                untrusted.wrap_socket(raw, server_hostname="localhost").close()


class UncheckedTls:
    """A TLS handshake that does not check the certificate (for the RST case)."""

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    def __init__(self, raw: socket.socket) -> None:
        self.tls = self.context.wrap_socket(raw, server_hostname="localhost")

    def __enter__(self) -> ssl.SSLSocket:
        return self.tls

    def __exit__(self, *_: object) -> None:
        self.tls.close()


if __name__ == "__main__":
    main()
