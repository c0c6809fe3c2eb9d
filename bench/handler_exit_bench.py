"""Failed calls when a handler calls ``sys.exit()`` under 4 concurrent clients (issue 15).

Runs ``webhook-dev serve`` on a small app whose ``/leave`` handler calls ``sys.exit(3)``
(or whatever ``--call`` says), keeps 4 clients calling ``/mutate`` back to back, hits
``/leave`` ``--exits`` times, and prints how many of the clients' calls failed. Bounded:
``--exits`` rounds of at most ``--calls`` client calls each. The figure before the fix
was measured the same way on the older tree (``PYTHONPATH=<old tree>``)::

    python bench/handler_exit_bench.py --exits 5
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tls_connections_bench import serve_port

APP = """
import os, sys, time
from aiohttp import web

async def mutate(request):
    review = await request.json()
    return web.json_response({
        "apiVersion": review["apiVersion"], "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": True},
    })

async def leave(request):
    await request.read()
    CALL

def create_app():
    app = web.Application()
    app.router.add_post("/mutate", mutate)
    app.router.add_post("/leave", leave)
    return app
"""
REVIEW = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {
        "uid": "u1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "namespace": "default",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0"}},
    },
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exits", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200, help="client calls between exits")
    parser.add_argument("--call", default="sys.exit(3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "hook.py").write_text(APP.replace("CALL", args.call))
        env = dict(os.environ, WEBHOOK_DEV_STATE_DIR=str(project / "state"), PYTHONUNBUFFERED="1")
        serve = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "webhook_dev",
                "serve",
                "hook",
                "--port",
                "0",
                "--no-record",
                "--no-reload",
            ],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            port = serve_port(serve)
            context = ssl.create_default_context(cafile=str(project / "state/ca/ca.crt"))
            print(json.dumps(_measure(port, context, args)))
        finally:
            serve.terminate()
            serve.wait(30)


def _measure(port: int, context: ssl.SSLContext, args: argparse.Namespace) -> dict[str, object]:
    body = json.dumps(REVIEW).encode()
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
        while not stop.is_set():
            try:
                connection.request("POST", "/mutate?timeout=10s", body=body)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPSConnection(
                    "127.0.0.1", port, context=context, timeout=30
                )
            with lock:
                counts["ok" if ok else "failed"] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    exit_answers = []
    started = time.monotonic()
    for _ in range(args.exits):
        _wait_calls(counts, lock, args.calls)
        leave = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
        try:
            leave.request("POST", "/leave?timeout=10s", body=body)
            exit_answers.append(leave.getresponse().status)
        except (OSError, http.client.HTTPException) as error:
            exit_answers.append(repr(error))
        _wait_calls(counts, lock, args.calls)
    stop.set()
    for thread in threads:
        thread.join(30)
    return {
        "handler": args.call,
        "clients": 4,
        "exits": args.exits,
        "client_calls": counts["ok"] + counts["failed"],
        "failed_client_calls": counts["failed"],
        "exit_call_answers": exit_answers,
        "seconds": round(time.monotonic() - started, 1),
    }


def _wait_calls(counts: dict[str, int], lock: threading.Lock, number: int) -> None:
    with lock:
        target = counts["ok"] + counts["failed"] + number
    until = time.monotonic() + 60
    while time.monotonic() < until:
        with lock:
            if counts["ok"] + counts["failed"] >= target:
                return
        time.sleep(0.02)


if __name__ == "__main__":
    main()
