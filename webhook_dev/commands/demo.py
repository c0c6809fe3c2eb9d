"""``webhook-dev demo``: the whole product on a machine with no cluster, in about a minute.

1. a lab (a real kube-apiserver, kube-proxy and sshd in network namespaces, and a node where
   Pods run), reused if one already runs;
2. the sidecar injector sample deployed to it, as a user would have it in-cluster: its
   Deployment serving on the node;
3. ``webhook-dev up`` in the lab's *workstation* namespace, redirecting that webhook through
   a reverse SSH tunnel to the sample running locally;
4. a Pod created in the labelled namespace, the sidecar the local code injected shown as a
   diff of the object before and after the webhook's patch (from the recording), and the Pod
   Running with both containers on the node (the sidecar starts, not only the patch);
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
from webhook_dev.commands.lab import BuildReporter
from webhook_dev.errors import LabError, WebhookDevError
from webhook_dev.kube import pod_status
from webhook_dev.kube.cluster import Cluster
from webhook_dev.lab import Lab, preflight, teardown
from webhook_dev.lab.images import NGINX_IMAGE, PAUSE_IMAGE
from webhook_dev.lab.process_output import ProcessOutput
from webhook_dev.paths import state_dir
from webhook_dev.recording import format as recording
from webhook_dev.reviews import admission as review

# sample_webhook is installed beside webhook_dev (pyproject.toml); up imports it from there.
SAMPLES_ROOT = Path(sample_webhook.__file__).resolve().parents[1]
SAMPLE = "sidecar-injector"
SERVICE = "sidecar-injector/sidecar-injector"
DEMO_NAMESPACE = "sidecar-demo"
READY_TIMEOUT = 120.0
POD_RUNNING_TIMEOUT = 90.0

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
        _step("Deploying the sidecar injector sample, as it would run in a cluster")
        deployed = lab.deploy_sample(SAMPLE)
        for kind, namespace, name in deployed.objects:
            _console.print(f"  {kind} {namespace + '/' if namespace else ''}{name}", style="dim")
        _console.print(
            f"  Deployment {deployed.namespace}/{deployed.deployment} serving in-cluster at "
            f"{', '.join(deployed.pod_ips)}"
        )

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
        _show_running(cluster, pod_name)

        if once:
            _step("Done: restoring the cluster")
        else:
            _step("Serving. Edit sample_webhook/sidecar_injector.py and create Pods:")
            _console.print(
                f"  KUBECONFIG={lab.host_kubeconfig} kubectl run web -n {DEMO_NAMESPACE} "
                f"--image={PAUSE_IMAGE} --image-pull-policy=Never\n"
                "  Ctrl-C restores the cluster and stops the lab."
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
            if not existing.has_node:
                raise LabError(
                    "the running lab has no node (it was started with --no-node), and the "
                    "demo runs the sample's Deployment and the injected Pod on one",
                    hint="run `webhook-dev lab down`, then `webhook-dev demo` again",
                )
            _step(f"Using the running lab (master {existing.master_ip})")
            return existing, False
        teardown()
    except LabError:
        pass
    _step("Starting a lab: etcd, kube-apiserver, controllers, kube-proxy, sshd and a node in netns")
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
        # The lab has no registry: the sidecar the local code injects must be an image the
        # node has, as the in-cluster Deployment's SIDECAR_IMAGE is (see lab.workloads).
        env={**os.environ, "WEBHOOK_DEV_STATE_DIR": str(state_dir()), "SIDECAR_IMAGE": NGINX_IMAGE},
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
        "spec": {
            # The node's own image (there is no registry); it leaves port 80 to the sidecar.
            "containers": [{"name": "web", "image": PAUSE_IMAGE, "imagePullPolicy": "Never"}],
            "terminationGracePeriodSeconds": 1,
        },
    }


def _show_running(cluster: Cluster, pod_name: str) -> None:
    """Wait until the Pod runs on the node with every container ready, and show it as
    ``kubectl get pod`` would: the injected sidecar really starts."""
    path = f"/api/v1/namespaces/{DEMO_NAMESPACE}/pods/{pod_name}"
    started = time.monotonic()
    pod = cluster.get(path)
    while time.monotonic() - started < POD_RUNNING_TIMEOUT:
        pod = cluster.get(path)
        if pod_status.running_and_ready(pod):
            break
        time.sleep(0.3)
    else:
        raise WebhookDevError(
            f"Pod {DEMO_NAMESPACE}/{pod_name} is not running after {POD_RUNNING_TIMEOUT:.0f}s "
            f"({pod_status.summary(pod)})",
            hint=f"kubectl -n {DEMO_NAMESPACE} describe pod {pod_name}; the kubelet's log is "
            "in the lab's logs",
        )
    _console.print(f"  Pod running on node {pod['spec'].get('nodeName')}:")
    for line in pod_status.table(pod, age_seconds=time.monotonic() - started):
        _console.print(f"  {line}")


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
