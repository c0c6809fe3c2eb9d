"""A Pod's state as ``kubectl get pod`` prints it: READY ``2/2``, STATUS ``Running``.

A subset of kubectl's ``printPod`` (k8s.io/kubectl, ``pkg/cmd/get`` → the table printer in
``pkg/printers/internalversion``): the phase, replaced by a container's waiting or
terminated reason (``ErrImageNeverPull``, ``CrashLoopBackOff``, ``Completed``) when one has
it, and ``Terminating`` once deleted. Init containers are not summarised. Pure: it reads
the Pod's JSON and nothing else.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


def ready_containers(pod: Json) -> tuple[int, int]:
    """(ready, declared) over the Pod's regular containers."""
    declared = len((pod.get("spec") or {}).get("containers") or [])
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(1 for status in statuses if status.get("ready")), declared


def status(pod: Json) -> str:
    """The STATUS column."""
    pod_status = pod.get("status") or {}
    reason = str(pod_status.get("reason") or pod_status.get("phase") or "Unknown")
    for container in reversed(pod_status.get("containerStatuses") or []):
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reason = str(waiting["reason"])
        elif terminated:
            reason = str(terminated.get("reason") or f"ExitCode:{terminated.get('exitCode')}")
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    return reason


def restarts(pod: Json) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(container.get("restartCount") or 0) for container in statuses)


def running_and_ready(pod: Json) -> bool:
    """Running, and every declared container ready (what READY n/n with n > 0 shows)."""
    ready, declared = ready_containers(pod)
    return status(pod) == "Running" and declared > 0 and ready == declared


def summary(pod: Json) -> str:
    """One line for an error message: ``READY 1/2, STATUS ErrImageNeverPull``."""
    ready, declared = ready_containers(pod)
    return f"READY {ready}/{declared}, STATUS {status(pod)}"


def table(pod: Json, *, age_seconds: float) -> list[str]:
    """The header and the Pod's row, aligned as kubectl aligns them."""
    ready, declared = ready_containers(pod)
    row = [
        str((pod.get("metadata") or {}).get("name", "")),
        f"{ready}/{declared}",
        status(pod),
        str(restarts(pod)),
        f"{int(age_seconds)}s",
    ]
    header = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    widths = [max(len(a), len(b)) for a, b in zip(header, row, strict=True)]

    def line(cells: list[str]) -> str:
        return "   ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    return [line(header).rstrip(), line(row).rstrip()]
