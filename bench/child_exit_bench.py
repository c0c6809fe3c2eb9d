"""How long ``serve``'s child processes outlive a ``kill -9`` of it (issue 23, finding 7).

Starts ``webhook-dev serve`` (the sidecar sample, no recording), keeps ``--clients``
threads calling it back to back, SIGKILLs it, and measures how long until every child
(the worker, the spare) is gone. Repeats ``--rounds`` times and prints each figure and
the worst. Bounded by count::

    python bench/child_exit_bench.py --rounds 10
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tls_connections_bench import REVIEW, serve_port


def children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children", encoding="ascii") as listed:
            found.update(int(child) for child in listed.read().split())
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def call_until(port: int, ca: str, stop: threading.Event) -> None:
    context = ssl.create_default_context(cafile=ca)
    while not stop.is_set():
        try:
            connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
            connection.request("POST", "/mutate?timeout=10s", body=REVIEW,
                               headers={"Content-Type": "application/json"})  # fmt: skip
            connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            return


def one_round(tmp: str, clients: int) -> float:
    env = dict(os.environ, WEBHOOK_DEV_STATE_DIR=f"{tmp}/state", PYTHONUNBUFFERED="1")
    serve = subprocess.Popen(
        [sys.executable, "-m", "webhook_dev", "serve", "sample_webhook.sidecar_injector",
         "--port", "0", "--no-record", "--no-reload", "--no-inspector"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    port = serve_port(serve)
    deadline = time.monotonic() + 30
    while len(children(serve.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the worker and its spare
    kids = children(serve.pid)
    stop = threading.Event()
    threads = [
        threading.Thread(target=call_until, args=(port, f"{tmp}/state/ca/ca.crt", stop))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    os.kill(serve.pid, signal.SIGKILL)
    killed = time.monotonic()
    serve.wait()
    while any(alive(kid) for kid in kids) and time.monotonic() - killed < 30:
        time.sleep(0.005)
    gone = time.monotonic() - killed
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    for kid in kids:
        if alive(kid):
            os.kill(kid, signal.SIGKILL)
    return gone


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(args.rounds):
            figures.append(one_round(tmp, args.clients))
            print(f"round {number + 1}: children gone {figures[-1] * 1000:.0f} ms after kill -9")
    median = sorted(figures)[len(figures) // 2]
    print(f"worst {max(figures) * 1000:.0f} ms, median {median * 1000:.0f} ms")


if __name__ == "__main__":
    main()
