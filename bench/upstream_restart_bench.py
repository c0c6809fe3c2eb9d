"""Benchmark restarts of a Go webhook behind ``serve --upstream --run`` (figures; not a test).

N edits of ``tests/go_webhook``'s version while 4 clients call without pause (each call
``?timeout=30s``), in two modes: ``--build "go build ..." --run bin/webhook`` and
``--run "go run ."``. For each: failed calls (goal 0) and save-to-new-behaviour p50/p95,
from the editor's rename to the first answer from the new version. The baseline, measured
in the same run on a copy of the same project: a plain ``go build`` of one edit, the floor
any restart pays; ratios are to it.

Run: ``.venv/bin/python bench/upstream_restart_bench.py [--edits 10]`` (needs Go).
Client, proxy, compiler and server share the machine: compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "tests" / "go_webhook"
VERSION_GO = 'package main\n\nconst Version = "{version}"\n'
REVIEW = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {
        "uid": "bench",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "namespace": "default",
        "name": "bench-0",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench-0"}},
    },
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def save(project: Path, version: str) -> float:
    temporary = project / ".version.go.swp"
    temporary.write_text(VERSION_GO.format(version=version))
    temporary.replace(project / "version.go")
    return time.monotonic()


def baseline_build_seconds(env: dict[str, str], edits: int) -> list[float]:
    with tempfile.TemporaryDirectory() as directory:
        project = Path(directory) / "p"
        shutil.copytree(EXAMPLE, project)
        seconds = []
        for number in range(edits):
            save(project, f"b{number}")
            started = time.monotonic()
            subprocess.run(["go", "build", "-o", "bin/webhook", "."], cwd=project, env=env,
                           check=True)  # fmt: skip
            seconds.append(time.monotonic() - started)
        return seconds


class Serve:
    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "webhook_dev", "serve", *argv],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        self.url = ""
        self.wait_for(r"^serving ")
        self.url = next(line for line in self.lines if line.startswith("serving ")).split()[1]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 600) -> None:
        compiled = re.compile(pattern)
        until = time.monotonic() + timeout
        while not any(compiled.search(line) for line in self.lines):
            if time.monotonic() > until or self.process.poll() is not None:
                raise SystemExit(f"no {pattern!r} in:\n" + "\n".join(self.lines))
            time.sleep(0.02)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)


async def run_mode(name: str, run_args: list[str], edits: int, env: dict[str, str],
                   state: Path) -> dict[str, float]:  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        project = Path(directory) / "p"
        shutil.copytree(EXAMPLE, project)
        port = free_port()
        argv = ["--upstream", f"http://127.0.0.1:{port}", "--port", "0", "--no-record",
                *[arg.format(port=port) for arg in run_args]]  # fmt: skip
        served = Serve(argv, project, env)
        served.wait_for(r"generation 1 ready")
        answers: list[tuple[float, str]] = []
        failures: list[str] = []
        done = asyncio.Event()
        body = json.dumps(REVIEW).encode()

        async def client(session: aiohttp.ClientSession) -> None:
            while not done.is_set():
                async with session.post(
                    f"{served.url}/mutate?timeout=30s",
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as answer:
                    text = await answer.text()
                    if answer.status != 200:
                        failures.append(f"{answer.status}: {text}")
                        continue
                    version = json.loads(text)["response"]["warnings"][0]
                    answers.append((time.monotonic(), version))  # fmt: skip

        connector = aiohttp.TCPConnector(ssl=False)
        save_to_new: list[float] = []
        async with aiohttp.ClientSession(connector=connector) as session:
            clients = [asyncio.create_task(client(session)) for _ in range(4)]
            await asyncio.sleep(1.0)
            for number in range(2, edits + 2):
                version = f"v{number}"
                saved = save(project, version)
                for _ in range(120_000):  # poll the answers so far; at most 10 min
                    if any(v == version and t >= saved for t, v in answers):
                        break
                    await asyncio.sleep(0.005)
                first = min(t for t, v in answers if v == version and t >= saved)
                save_to_new.append(first - saved)
                await asyncio.sleep(0.5)
            done.set()
            await asyncio.gather(*clients)
        served.stop()
    save_to_new.sort()
    figures = {
        "calls": float(len(answers) + len(failures)),
        "failed": float(len(failures)),
        "p50": statistics.median(save_to_new),
        "p95": save_to_new[min(len(save_to_new) - 1, round(0.95 * (len(save_to_new) - 1)))],
    }
    print(f"{name}: {figures['calls']:.0f} calls, {figures['failed']:.0f} failed; "
          f"save-to-new-behaviour p50 {figures['p50'] * 1000:.0f} ms, "
          f"p95 {figures['p95'] * 1000:.0f} ms")  # fmt: skip
    if failures:
        print("  first failures:", failures[:3])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--edits", type=int, default=10)
    args = parser.parse_args()
    go = shutil.which("go") or "/usr/local/go/bin/go"
    state = Path(tempfile.mkdtemp(prefix="wd-bench-state-"))
    env = dict(os.environ, GOTOOLCHAIN="local", WEBHOOK_DEV_STATE_DIR=str(state),
               PATH=f"{Path(go).parent}{os.pathsep}{os.environ.get('PATH', '')}")  # fmt: skip
    baseline = baseline_build_seconds(env, args.edits)
    build_p50 = statistics.median(baseline)
    print(f"baseline: go build of one edit, p50 {build_p50 * 1000:.0f} ms")
    modes = {
        "--build + --run bin/webhook": ["--build", "go build -o bin/webhook .",
                                        "--run", "bin/webhook --port {port}"],
        "--run 'go run .'": ["--run", "go run . --port {port}"],
    }  # fmt: skip
    for name, run_args in modes.items():
        figures = asyncio.run(run_mode(name, run_args, args.edits, env, state))
        print(f"  ratio to a plain go build: p50 x{figures['p50'] / build_p50:.2f}, "
              f"p95 x{figures['p95'] / build_p50:.2f}")  # fmt: skip
    shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
