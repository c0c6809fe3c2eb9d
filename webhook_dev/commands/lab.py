"""``webhook-dev lab build | up | exec | status | down``."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click
from rich.console import Console

from webhook_dev.errors import ExitCode
from webhook_dev.lab import binaries, configs, images, policy_evaluator
from webhook_dev.lab.gobuild import BuildProgress
from webhook_dev.lab.lab import DEFAULT_GATEWAY_PORTS, Lab, summary, teardown

_console = Console(stderr=True, soft_wrap=True)


def _format_elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


class BuildReporter:
    """Shows which binary is building and for how long; one line per finished step.

    On a terminal it is a live status line; in CI logs it prints a line at most every
    30 seconds per step, so a 40-minute build shows it is alive without flooding the log.
    """

    def __init__(self) -> None:
        self._step = ""
        self._step_started = time.monotonic()
        self._last_print = 0.0
        self._status = _console.status("") if _console.is_terminal else None
        if self._status:
            self._status.start()

    def __call__(self, tick: BuildProgress) -> None:
        now = time.monotonic()
        if tick.step != self._step:
            if self._step:
                took = _format_elapsed(now - self._step_started)
                _console.print(f"  done: {self._step} ({took})")
            self._step, self._step_started, self._last_print = tick.step, now, 0.0
            _console.print(f"lab build: {tick.step} ...")
        if tick.step.startswith("building"):
            done = f"{tick.lines}/{tick.packages_total or '?'} packages compiled"
        else:
            done = f"{tick.lines} lines"
        line = (
            f"{tick.step}: {_format_elapsed(tick.elapsed_seconds)}, {done} — {tick.last_line[-60:]}"
        )
        if self._status:
            self._status.update(line)
        elif now - self._last_print >= 30:
            self._last_print = now
            _console.print(f"  {line}", highlight=False)

    def close(self) -> None:
        if self._status:
            self._status.stop()
        if self._step:
            _console.print(
                f"  done: {self._step} ({_format_elapsed(time.monotonic() - self._step_started)})"
            )


_assets_option = click.option(
    "--assets",
    "assets",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory with prebuilt binaries (etcd, kube-apiserver, ...); KUBEBUILDER_ASSETS "
    "works too. Binaries it lacks come from the cache or are built.",
)


@click.group()
def lab() -> None:
    """A real cluster in netns: etcd, kube-apiserver, controllers, kube-proxy, sshd, and a
    node (kubelet, containerd) that runs Pods from images built on this machine."""


def _echo_images(archive: images.ImageArchive) -> None:
    for image in archive.images:
        click.echo(
            f"{image.reference:40} {archive.source:6} {image.size / 1e6:6.1f} MB  "
            f"{image.digest[:19]}  {image.description}"
        )


@lab.command()
@_assets_option
@click.option(
    "--images/--no-images",
    "with_images",
    default=True,
    show_default=True,
    help="Also build the node's images (mmdebstrap from Debian's archive, minutes once).",
)
def build(assets: Path | None, with_images: bool) -> None:
    """Build (or find) the lab's binaries and images and cache them; prints where each
    came from."""
    reporter = BuildReporter()
    started = time.monotonic()
    try:
        found = binaries.resolve(
            binaries.assets_dir_from(str(assets) if assets else None),
            allow_build=True,
            progress=reporter,
        )
        archive = images.resolve(allow_build=True, progress=reporter) if with_images else None
        evaluator = policy_evaluator.resolve(allow_build=True, progress=reporter)
    finally:
        reporter.close()
    for item in found.values():
        click.echo(f"{item.name:24} {item.source:6} {item.path}  ({item.version})")
    click.echo(f"{policy_evaluator.NAME:24} {'cache':6} {evaluator}")
    if archive:
        _echo_images(archive)
    click.echo(f"lab build: ready in {_format_elapsed(time.monotonic() - started)}")


@lab.command("images")
@click.option(
    "--build/--no-build",
    "allow_build",
    default=True,
    show_default=True,
    help="Build the images if they are not cached yet.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def images_(allow_build: bool, as_json: bool) -> None:
    """List the node's images (built here from Debian packages; there is no registry)."""
    reporter = BuildReporter()
    try:
        archive = images.resolve(allow_build=allow_build, progress=reporter)
    finally:
        reporter.close()
    if as_json:
        listed = [{**image.__dict__, "source": archive.source} for image in archive.images]
        click.echo(json.dumps({"archive": str(archive.path), "images": listed}, indent=2))
        return
    _echo_images(archive)
    click.echo(f"  archive: {archive.path}")


@lab.command()
@click.option(
    "--gateway-ports",
    type=click.Choice(configs.GATEWAY_PORTS_CHOICES),
    default=DEFAULT_GATEWAY_PORTS,
    show_default=True,
    help="sshd's GatewayPorts on the master: whether remote forwards may bind the "
    "master's address (`webhook-dev up` needs yes or clientspecified).",
)
@click.option(
    "--aggregator-routing",
    is_flag=True,
    help="Start kube-apiserver with --enable-aggregator-routing (it resolves "
    "webhook Services to endpoints itself, no kube-proxy in the path).",
)
@click.option(
    "--routable",
    is_flag=True,
    help="Let the master open connections to the workstation, as on one network or a "
    "VPN (`webhook-dev up --direct` needs it); by default it may not, as behind NAT.",
)
@click.option(
    "--build/--no-build",
    "allow_build",
    default=True,
    show_default=True,
    help="Build missing binaries with Go (tens of minutes once).",
)
@click.option(
    "--node/--no-node",
    "with_node",
    default=True,
    show_default=True,
    help="Also start a node (kubelet, containerd, CNI) and kube-scheduler, so Pods run; "
    "--no-node is the control plane alone.",
)
@_assets_option
def up(
    gateway_ports: configs.GatewayPorts,
    aggregator_routing: bool,
    routable: bool,
    allow_build: bool,
    with_node: bool,
    assets: Path | None,
) -> None:
    """Start the lab; return once the apiserver (and the node) is ready. Remove it with
    `lab down`."""
    started = time.monotonic()
    reporter = BuildReporter()
    try:
        running = Lab.start(
            assets=binaries.assets_dir_from(str(assets) if assets else None),
            gateway_ports=gateway_ports,
            aggregator_routing=aggregator_routing,
            routable=routable,
            allow_build=allow_build,
            progress=reporter,
            with_node=with_node,
        )
    finally:
        reporter.close()
    elapsed = time.monotonic() - started
    click.echo(f"lab up: ready in {elapsed:.1f}s")
    on_node = ("containerd", "kubelet", "kube-proxy-node")
    for name, pid in running.state.pids.items():
        where = running.node_ns if name in on_node else running.master_ns
        click.echo(f"  {name:24} pid {pid:<8} in netns {where}")
    if running.has_node:
        click.echo(
            f"  node {running.node_name} Ready at {running.topology.node_ip}; "
            f"Pods get {running.pod_cidr}; images: {', '.join(running.state.images)}"
        )
    click.echo(
        f"  sshd GatewayPorts {running.state.gateway_ports}; "
        f"aggregator routing {'on' if running.state.aggregator_routing else 'off'}; "
        f"workstation {'routable' if running.state.routable else 'behind NAT'}"
    )
    click.echo(
        f"  master {running.master_ip} (from the workstation), "
        f"{running.topology.master_host_ip} (from this shell)"
    )
    click.echo(f"  logs: {running.layout.logs}")
    click.echo("Use it:")
    kubectl = running.state.binaries.get("kubectl", "kubectl")
    click.echo(f"  KUBECONFIG={running.host_kubeconfig} {kubectl} get ns   # from this shell")
    click.echo(
        "  webhook-dev lab exec -- bash                  # a shell on the workstation: "
        '$KUBECONFIG and ssh "$WEBHOOK_DEV_LAB_SSH" work there'
    )
    click.echo("  webhook-dev lab down                          # remove everything")


@lab.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(argv: tuple[str, ...]) -> None:
    """Run ARGV in the workstation namespace with KUBECONFIG and WEBHOOK_DEV_LAB_SSH set."""
    running = Lab.attach()
    command = running.workstation_argv(argv)
    os.execvp(command[0], command)


@lab.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Show whether a lab runs, its addresses and the state of each component."""
    running = Lab.attach()
    description = summary(running)
    description["apiserver_ready"] = running.healthy()
    if as_json:
        click.echo(json.dumps(description, indent=2))
        return
    click.echo(
        f"lab: {'ready' if description['apiserver_ready'] else 'NOT ready'}; "
        f"master {running.master_ip}, workstation {running.workstation_ip}; "
        f"GatewayPorts {running.state.gateway_ports}; aggregator routing "
        f"{'on' if running.state.aggregator_routing else 'off'}; "
        f"{'routable' if running.state.routable else 'behind NAT'}"
    )
    for name, component in description["components"].items():
        click.echo(
            f"  {name:24} pid {component['pid']!s:<8} "
            f"{'running' if component['running'] else 'STOPPED'}"
        )
    if running.has_node:
        click.echo(
            f"  node {running.node_name}: {'Ready' if running.node_ready() else 'NOT Ready'}, "
            f"{running.topology.node_ip}, Pods {running.pod_cidr}"
        )
    else:
        click.echo("  no node (started with --no-node)")
    click.echo(f"  kubeconfig (workstation): {running.kubeconfig}")
    click.echo(f"  kubeconfig (this shell):  {running.host_kubeconfig}")
    if not description["apiserver_ready"]:
        sys.exit(ExitCode.FAILED)


@lab.command()
def down() -> None:
    """Remove every process, namespace, link and file of the lab (safe to run twice)."""
    removed = teardown()
    if removed:
        click.echo("lab down: removed " + "; ".join(removed))
    else:
        click.echo("lab down: nothing to remove")
