"""The node's machinery: its files, cgroups and mount namespace, and removing all of it.

containerd and the kubelet share one mount namespace of their own, made by ``unshare
--mount --propagation slave`` when containerd starts (the kubelet joins it with
``nsenter``). Not ``ip netns exec``: that remounts /sys for the network namespace, which
hides /sys/fs/cgroup. Sharing matters: the kubelet mounts Secret volumes (tmpfs) that
containerd must see to bind them into containers. And the namespace being private is what
makes teardown total: every mount the node makes — the Pods' root filesystems, their
volumes, their network namespaces' bind mounts — lives in it and goes away with its last
process, even after ``kill -9``; the machine's mount table never sees them.

It also gives the kubelet directories of the lab's own where the kubelet ignores its
``--root-dir`` (the device-plugin socket in /var/lib/kubelet, the log links in
/var/log/containers), so two labs' kubelets never share them.

The same namespace gives the kubelet the kernel settings it insists on: it checks
``vm.overcommit_memory``, ``kernel.panic`` and four more, and either rewrites them for the
whole machine (``protectKernelDefaults: false``) or refuses to start. The lab bind-mounts
files holding the expected values over those /proc/sys entries inside the node's mount
namespace only, and runs the kubelet with ``protectKernelDefaults: true``: the machine's
settings stay as they are. Containers get a fresh /proc and see the real values.

What survives its processes and is removed by :func:`remove_leftovers`: the cgroups
under the lab's cgroup root, the shims' sockets (containerd 1.6 puts them in
/run/containerd/s/), the CNI plugins' result cache in /var/lib/cni, and the mount points
of the shadowed directories when the lab had to create them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from webhook_dev.lab import netns
from webhook_dev.lab.layout import LabLayout
from webhook_dev.lab.topology import Topology

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTAINER_LOG_LINKS = Path("/var/log/containers")
CNI_CACHE = Path("/var/lib/cni")
# containerd 1.6 puts every shim's socket here, whatever its state dir; not configurable.
SHIM_SOCKETS = Path("/run/containerd/s")

# What the kubelet's setupKernelTunables expects (pkg/kubelet/cm), as /proc/sys paths.
KERNEL_TUNABLES = {
    "vm/overcommit_memory": "1",
    "vm/panic_on_oom": "0",
    "kernel/panic": "10",
    "kernel/panic_on_oops": "1",
    "kernel/keys/root_maxkeys": "1000000",
    "kernel/keys/root_maxbytes": "25000000",
}


# Paths the kubelet uses whatever its --root-dir: its device-plugin socket and the log
# symlinks. Two labs' kubelets would share them, so in the node's mount namespace each is
# a directory of the lab's (the machine keeps, at most, an empty mount point).
SHADOWED_DIRS = (Path("/var/lib/kubelet"), CONTAINER_LOG_LINKS)


def shadow_dir(layout: LabLayout, host_dir: Path) -> Path:
    return layout.node / "shadow" / str(host_dir).strip("/").replace("/", "-")


def preflight() -> str | None:
    """Why this machine cannot run the node, or None."""
    for tool, package in (
        ("containerd", "containerd"),
        ("containerd-shim-runc-v2", "containerd"),
        ("ctr", "containerd"),
        ("runc", "runc"),
        ("nsenter", "util-linux"),
        ("unshare", "util-linux"),
    ):
        if not shutil.which(tool):
            return f"the lab's node needs `{tool}` (run dev/setup.sh: {package})"
    if not os.path.exists("/usr/lib/cni/bridge"):
        return (
            "the lab's node needs the CNI plugins (run dev/setup.sh: containernetworking-plugins)"
        )
    if not cgroup_hierarchies():
        return "the lab's node needs cgroups mounted under /sys/fs/cgroup"
    return None


def cgroup_hierarchies() -> list[Path]:
    """Mount points of the cgroup hierarchies (v1 controllers, and the unified one if any)."""
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2") and fields[4].startswith(str(CGROUP_ROOT)):
                found.append(Path(fields[4]))
    return sorted(set(found))


def create_cgroups(topology: Topology) -> None:
    """The kubelet's cgroup root in every hierarchy (it refuses a root that is missing).

    A new cpuset cgroup starts with no CPUs and no memory nodes; it gets its parent's,
    or no process could join it.
    """
    name = topology.node_cgroup.lstrip("/")
    for hierarchy in cgroup_hierarchies():
        group = hierarchy / name
        group.mkdir(exist_ok=True)
        for setting in ("cpuset.cpus", "cpuset.mems"):
            parent = hierarchy / setting
            if parent.exists() and not (group / setting).read_text().strip():
                (group / setting).write_text(parent.read_text())


def cgroup_pids(topology: Topology) -> list[int]:
    """Every process in the lab's cgroup subtree, in any hierarchy (the Pods' processes)."""
    name = topology.node_cgroup.lstrip("/")
    pids: set[int] = set()
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / name
        if not root.is_dir():
            continue
        for directory, _subdirs, files in os.walk(root):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError, ValueError):
                    text = Path(directory, "cgroup.procs").read_text()
                    pids.update(int(pid) for pid in text.split())
    return sorted(pids)


def member_pids(topology: Topology) -> list[int]:
    """Processes whose cgroup is under the lab's, zombies included (``cgroup.procs``
    no longer lists a zombie, ``/proc/<pid>/cgroup`` still names its cgroup)."""
    marker = f":{topology.node_cgroup}/"
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if marker in _read(proc / "cgroup"):
            found.append(int(proc.name))
    return found


def remove_cgroups(topology: Topology, timeout: float = 10.0) -> int:
    """rmdir the lab's cgroup subtree, deepest first; return how many were removed.

    A killed container whose shim was killed too is reparented to the machine's init and
    stays a zombie in its cgroup until init reaps it; the cgroup cannot go before that.
    So this retries for up to ``timeout`` seconds.
    """
    name = topology.node_cgroup.lstrip("/")
    removed = 0
    deadline = time.monotonic() + timeout
    while True:
        left = 0
        for hierarchy in cgroup_hierarchies():
            root = hierarchy / name
            if not root.is_dir():
                continue
            walk = sorted(os.walk(root), key=lambda entry: -len(entry[0]))
            for directory, _subdirs, _files in walk:
                try:
                    os.rmdir(directory)
                    removed += 1
                except OSError:
                    left += 1
        if not left or time.monotonic() > deadline:
            return removed
        time.sleep(0.1)


def write_kernel_tunables(layout: LabLayout) -> None:
    for path, value in KERNEL_TUNABLES.items():
        target = layout.kernel_tunables / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(value + "\n")


def containerd_command(layout: LabLayout, topology: Topology, argv: Sequence[str]) -> list[str]:
    """containerd in the node's network namespace and a new mount namespace of its own.

    The shell does the /proc/sys bind mounts inside that namespace, then execs
    containerd, so the recorded pid is containerd's.
    """
    mounts = "; ".join(
        [
            # Image content and unpacked layers in memory: importing the images onto the
            # disk here took 9 s of every start, onto tmpfs ~2 s. Gone with the namespace.
            f"mkdir -p {layout.containerd_root}; "
            f"mount -t tmpfs -o mode=0700 webhook-dev-lab-images {layout.containerd_root}",
        ]
        + [
            f"mount --bind {layout.kernel_tunables / path} /proc/sys/{path}"
            for path in KERNEL_TUNABLES
        ]
        + [
            f"mkdir -p {shadow_dir(layout, host)} {host}; "
            f"mount --bind {shadow_dir(layout, host)} {host}"
            for host in SHADOWED_DIRS
        ]
    )
    return [
        "unshare",
        "--mount",
        "--propagation",
        "slave",
        "nsenter",
        f"--net=/run/netns/{topology.node_ns}",
        "sh",
        "-ec",
        f'{mounts}; exec "$@"',
        "sh",
        *argv,
    ]


def join_command(anchor_pid: int, argv: Sequence[str]) -> list[str]:
    """``argv`` in the network and mount namespaces of ``anchor_pid`` (containerd)."""
    return ["nsenter", f"--target={anchor_pid}", "--mount", "--net", *argv]


def shim_sockets(layout: LabLayout) -> list[Path]:
    """The shims' socket files, from the ``address`` file in each task bundle."""
    sockets = []
    tasks = layout.containerd_state / "io.containerd.runtime.v2.task"
    for address in tasks.glob("*/*/address"):
        with contextlib.suppress(OSError):
            value = address.read_text().strip()
            if value.startswith("unix://"):
                sockets.append(Path(value.removeprefix("unix://")))
    return sockets


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def remove_leftovers(layout: LabLayout, topology: Topology) -> list[str]:
    """Remove what the node leaves outside its directory once its processes are gone."""
    removed = []
    for socket in shim_sockets(layout):
        if socket.exists() and not str(socket).startswith(str(layout.root)):
            socket.unlink(missing_ok=True)
            removed.append(str(socket))
    for directory in (SHIM_SOCKETS, SHIM_SOCKETS.parent):
        with contextlib.suppress(OSError):  # only if empty: the machine's containerd's stay
            directory.rmdir()
            removed.append(str(directory))
    if CONTAINER_LOG_LINKS.is_dir():
        for link in CONTAINER_LOG_LINKS.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and os.readlink(link).startswith(str(layout.root)):
                    link.unlink()
                    removed.append(str(link))
    # libcni caches each attachment as results/<network>-<sandbox id>-<interface>; the
    # loopback one is named for the plugin, so find those by the Pod's network namespace
    # path they record, which is under the lab's directory.
    for cached in (
        *CNI_CACHE.glob(f"results/{topology.pod_network}-*"),
        *(
            result
            for result in CNI_CACHE.glob("results/cni-loopback-*")
            if str(layout.root) in _read(result)
        ),
        CNI_CACHE / "networks" / topology.pod_network,
    ):
        if cached.is_dir():
            shutil.rmtree(cached, ignore_errors=True)
            removed.append(str(cached))
        elif cached.exists():
            cached.unlink(missing_ok=True)
            removed.append(str(cached))
    for directory in (CNI_CACHE / "results", CNI_CACHE / "networks", CNI_CACHE):
        with contextlib.suppress(OSError):  # only if empty: another user's data stays
            directory.rmdir()
            removed.append(str(directory))
    for directory in SHADOWED_DIRS:
        # Removing a directory that another lab's node has mounted over would detach that
        # mount in its namespace: leave it while any mount namespace uses it.
        if not mounted_anywhere(directory):
            with contextlib.suppress(OSError):
                directory.rmdir()
                removed.append(str(directory))
    count = remove_cgroups(topology)
    if count:
        removed.append(f"{count} cgroup(s) under {topology.node_cgroup}")
    return removed


def mounted_anywhere(path: Path) -> bool:
    """Whether ``path`` is a mount point in any process's mount namespace."""
    seen: set[int] = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            namespace = os.stat(proc / "ns" / "mnt").st_ino
            if namespace in seen:
                continue
            seen.add(namespace)
            with open(proc / "mountinfo") as mountinfo:
                if any(line.split()[4] == str(path) for line in mountinfo):
                    return True
        except OSError:
            continue
    return False


def mounts_under(path: Path) -> list[str]:
    """Mount points below ``path`` in this (the machine's) mount namespace."""
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4]
            if point == str(path) or point.startswith(f"{path}/"):
                found.append(point)
    return found


def unmount_under(path: Path) -> list[str]:
    """Lazily unmount anything below ``path`` (deepest first): a belt to the braces of the
    private mount namespace, for a lab dir someone mounted into by hand."""
    points = sorted(mounts_under(path), key=len, reverse=True)
    for point in points:
        netns.run(["umount", "-l", point], check=False)
    return points
