"""Start and stop the lab's long-running processes inside its namespaces.

Components run detached (own session, stdin closed, output to a log file) so they outlive
``lab up``; the pid we record is the component's own, because ``ip netns exec`` execs the
command in place. Stopping is SIGTERM, a grace period, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from webhook_dev.lab.netns import in_namespace


def spawn(namespace: str, argv: Sequence[str], log_path: Path) -> int:
    """Start ``argv`` in ``namespace``, appending stdout and stderr to ``log_path``."""
    return spawn_command(in_namespace(namespace, argv), log_path)


def spawn_command(argv: Sequence[str], log_path: Path) -> int:
    """Start ``argv`` detached, appending its output to ``log_path``; return its pid.

    For commands that enter their namespaces themselves (``nsenter``, ``unshare``), which
    exec in place like ``ip netns exec``: the pid is the component's own.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return process.pid


def _reap(pid: int) -> bool:
    """Collect ``pid`` if it is our exited child; True if it no longer exists."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == pid
    except ChildProcessError:
        return not is_alive(pid)


def is_alive(pid: int) -> bool:
    """Running (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def in_netns(pid: int, namespace: str) -> bool:
    """Whether ``pid`` lives in network namespace ``namespace`` (guards against pid reuse)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{namespace}").st_ino
    except OSError:
        return False


def terminate(pids: Sequence[int], grace_seconds: float = 5.0) -> None:
    """SIGTERM every pid, wait up to ``grace_seconds``, SIGKILL what is left, reap children."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    remaining = list(pids)
    while remaining and time.monotonic() < deadline:
        remaining = [pid for pid in remaining if not _reap(pid)]
        if remaining:
            time.sleep(0.05)
    for pid in remaining:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while remaining and time.monotonic() < deadline:
        remaining = [pid for pid in remaining if not _reap(pid)]
        if remaining:
            time.sleep(0.05)
