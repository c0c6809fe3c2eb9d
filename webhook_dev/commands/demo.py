"""``webhook-dev demo``: the whole product on a machine with no cluster, in about a minute.

1. a lab (a real kube-apiserver, kube-proxy and sshd in network namespaces), reused if one
   already runs;
2. the sidecar injector sample's manifests applied to it, as a user would have them in-cluster;
3. ``webhook-dev up`` in the lab's *workstation* namespace, redirecting that webhook through
   a reverse SSH tunnel to the sample running locally;
4. a Pod created in the labelled namespace, and the sidecar the local code injected shown as
   a diff of the object before and after the webhook's patch (from the recording);
5. serving until Ctrl-C, then ``down`` (by stopping ``up``) and ``lab down``.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.syntax import Syntax

import sample_webhook
from webhook_dev.admission import review
from webhook_dev.commands.lab import BuildReporter
from webhook_dev.errors import LabError, WebhookDevError
from webhook_dev.kube import manifests
from webhook_dev.kube.cluster import Cluster
from webhook_dev.lab import Lab, preflight, teardown
from webhook_dev.lab.process_output import ProcessOutput
from webhook_dev.paths import state_dir
from webhook_dev.recording import format as recording

# sample_webhook is installed beside webhook_dev (pyproject.toml); up imports it from there.
SAMPLES_ROOT = Path(sample_webhook.__file__).resolve().parents[1]
SAMPLE_MANIFESTS = SAMPLES_ROOT / "sample_webhook" / "deploy"
SERVICE = "sidecar-injector/sidecar-injector"
DEMO_NAMESPACE = "sidecar-demo"
READY_TIMEOUT = 120.0

_console = Console(highlight=False, soft_wrap=True)


def _step(text: str) -> None:
    _console.print(f"\n[bold cyan]▶[/] [bold]{text}[/]")


@click.command()
@click.option(
    "--once",
    is_flag=True,
    help="Show the injected sidecar, then clean up and exit (no waiting for Ctrl-C).",
)
@click.option("--keep-lab", is_flag=True, help="Leave the lab running afterwards.")
def demo(once: bool, keep_lab: bool) -> None:
    """Run the whole loop on a local lab: redirect, inject a sidecar, restore, clean up."""
    reason = preflight()
    if reason:
        raise LabError(f"the demo runs on a local lab, which {reason.removeprefix('the lab ')}")
    lab, started_here = _lab()
    up: subprocess.Popen[str] | None = None
    try:
        cluster = Cluster.connect(kubeconfig=str(lab.host_kubeconfig))
        _step("Installing the sidecar injector sample, as it would be in a cluster")
        for applied in manifests.apply(
            cluster, manifests.load(SAMPLE_MANIFESTS / "sidecar-injector.yaml")
        ):
            _console.print(f"  {applied}", style="dim" if "skipped" in applied.outcome else None)

        _step("webhook-dev up (on the lab's workstation: the master reaches it only via SSH)")
        record = state_dir() / "recordings" / f"demo-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        up, up_output = _start_up(lab, record)
        _wait_for(up_output, "ready: kube-apiserver")

        _step(f"Creating a Pod in namespace {DEMO_NAMESPACE} (labelled sidecar-inject: enabled)")
        pod_name = f"demo-{secrets.token_hex(2)}"
        stored = cluster.create(f"/api/v1/namespaces/{DEMO_NAMESPACE}/pods", _pod(pod_name))
        names = [c["name"] for c in stored["spec"]["containers"]]
        _console.print(
            f"  stored Pod {DEMO_NAMESPACE}/{pod_name} has containers: {', '.join(names)}"
        )
        _show_patch(record, pod_name)

        if once:
            _step("Done: restoring the cluster")
        else:
            _step("Serving. Edit sample_webhook/sidecar_injector.py and create Pods:")
            _console.print(
                f"  KUBECONFIG={lab.host_kubeconfig} kubectl run web -n {DEMO_NAMESPACE} "
                "--image=nginx\n  Ctrl-C restores the cluster and stops the lab."
            )
            _wait_for_interrupt(up)
    finally:
        if up is not None:
            _stop(up)
        if started_here and not keep_lab:
            _step("lab down")
            removed = teardown(lab.layout.root)
            _console.print(f"  removed: {', '.join(removed)}", style="dim")


def _lab() -> tuple[Lab, bool]:
    try:
        existing = Lab.attach()
        if existing.healthy():
            _step(f"Using the running lab (master {existing.master_ip})")
            return existing, False
        teardown()
    except LabError:
        pass
    _step("Starting a lab: etcd, kube-apiserver, controllers, kube-proxy and sshd in netns")
    reporter = BuildReporter()
    started = time.monotonic()
    try:
        lab = Lab.start(allow_build=True, progress=reporter)
    finally:
        reporter.close()
    _console.print(f"  ready in {time.monotonic() - started:.1f}s; master {lab.master_ip}")
    return lab, True


def _start_up(lab: Lab, record: Path) -> tuple[subprocess.Popen[str], ProcessOutput]:
    argv = [
        sys.executable,
        "-m",
        "webhook_dev",
        "up",
        "--service",
        SERVICE,
        "--ssh",
        lab.ssh_destination,
        "--app",
        "sample_webhook.sidecar_injector",
        "--record",
        str(record),
    ]
    process = subprocess.Popen(
        lab.workstation_argv(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        cwd=SAMPLES_ROOT,
        env={**os.environ, "WEBHOOK_DEV_STATE_DIR": str(state_dir())},
    )

    def echo(line: str) -> None:
        _console.print(f"  [dim]up │[/] {line}", markup=True, highlight=False)

    return process, ProcessOutput(process, echo=echo)


def _wait_for(output: ProcessOutput, text: str) -> None:
    if output.wait_for(re.escape(text), timeout=READY_TIMEOUT) is None:
        raise WebhookDevError(
            f"`webhook-dev up` did not get ready (exit {output.process.poll()})",
            hint="its output is above",
        )


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "demo"}},
        "spec": {"containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10"}]},
    }


def _show_patch(record: Path, pod_name: str) -> None:
    """The object as the apiserver sent it, and after the local code's patch, as a diff."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = record.read_text() if record.exists() else ""
        exchanges, _ = recording.decode_lines(text, source=str(record))
        for exchange in exchanges:
            if exchange.request.get("name") == pod_name and exchange.response_review:
                request = review.parse_request(exchange.request_review or {})
                meaning, _ = review.read_response(request, exchange.response_review)
                if meaning and meaning.patched and request.object:
                    _print_diff(request.object, meaning.patched)
                    return
        time.sleep(0.2)
    _console.print("  (the exchange did not reach the recording in time)")


def _print_diff(before: dict[str, Any], after: dict[str, Any]) -> None:
    def text(obj: dict[str, Any]) -> list[str]:
        clean = json.loads(json.dumps(obj))
        clean.get("metadata", {}).pop("managedFields", None)
        return yaml.safe_dump(clean, sort_keys=True).splitlines(keepends=True)

    diff = "".join(difflib.unified_diff(text(before), text(after), "as sent", "as patched", n=2))
    _console.print(Syntax(diff, "diff", background_color="default"))


def _wait_for_interrupt(up: subprocess.Popen[str]) -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.is_set() and up.poll() is None:
        stop.wait(0.5)


def _stop(up: subprocess.Popen[str]) -> None:
    if up.poll() is None:
        os.killpg(up.pid, signal.SIGTERM)
    try:
        up.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(up.pid, signal.SIGKILL)
        up.wait()
