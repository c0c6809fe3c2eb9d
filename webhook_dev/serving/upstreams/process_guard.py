"""The guard: runs a ``--run`` command so that it can never outlive webhook-dev.

Run as ``python -m webhook_dev.serving.upstreams.process_guard CMD``. Why a guard and not just
``PR_SET_PDEATHSIG`` on the command: the death signal reaches only the direct child, and
``go run``, ``npm start`` or a shell script start the real server as a *grandchild* that
would keep the port after a ``kill -9`` of webhook-dev. The guard is started in a new
process group (session) and runs CMD with ``sh -c`` in that same group, so:

* webhook-dev stops everything with one ``killpg`` (SIGTERM, then SIGKILL);
* when webhook-dev dies, the kernel sends the guard SIGHUP (``PR_SET_PDEATHSIG``), and the
  guard terminates the whole group, server included, SIGKILL after a grace period.

It uses only the standard library's low-level modules, so it adds a few tens of
milliseconds to a restart.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from types import FrameType

# With webhook-dev gone no call is left to finish, and the next webhook-dev wants the
# port: CMD gets SIGTERM and this long to exit before the group's SIGKILL, so everything
# is gone within 1 s of a ``kill -9`` of webhook-dev.
GRACE_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1


def _terminate_group(signum: int, frame: FrameType | None) -> None:
    """Our parent died: end the whole group (CMD and everything it started), then us."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(0, signal.SIGTERM)
    until = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < until:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break  # our children are gone; grandchildren get the SIGKILL below anyway
        if pid == 0:
            time.sleep(0.05)
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m webhook_dev.serving.upstreams.process_guard CMD", file=sys.stderr)
        return 2
    parent = os.getppid()
    signal.signal(signal.SIGHUP, _terminate_group)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGHUP)
    if os.getppid() != parent:  # the parent died before we asked
        _terminate_group(signal.SIGHUP, None)
    child = os.fork()
    if child == 0:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        try:
            os.execv("/bin/sh", ["sh", "-c", argv[0]])
        finally:
            os._exit(127)
    # SIGTERM from webhook-dev's killpg reaches CMD directly; we wait for it to finish.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            _, status = os.waitpid(child, 0)
        except InterruptedError:
            continue
        return os.waitstatus_to_exitcode(status) if status else 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.exit(code if code >= 0 else 128 - code)
