"""What ``kubectl get pod`` would print for a Pod, from its JSON."""

from __future__ import annotations

from typing import Any

from webhook_dev.kube import pod_status


def pod(*statuses: dict[str, Any], phase: str = "Running", **metadata: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "demo-1a2b", **metadata},
        "spec": {"containers": [{"name": "web"}, {"name": "nginx-sidecar"}]},
        "status": {"phase": phase, "containerStatuses": list(statuses)},
    }


RUNNING = {"ready": True, "restartCount": 0, "state": {"running": {}}}


def test_both_containers_ready_read_2_of_2_running() -> None:
    both = pod(RUNNING, RUNNING)
    assert pod_status.running_and_ready(both)
    assert pod_status.table(both, age_seconds=4.7) == [
        "NAME        READY   STATUS    RESTARTS   AGE",
        "demo-1a2b   2/2     Running   0          4s",
    ]


def test_a_sidecar_that_cannot_start_shows_its_waiting_reason_and_is_not_ready() -> None:
    waiting = {"ready": False, "state": {"waiting": {"reason": "ErrImageNeverPull"}}}
    stuck = pod(RUNNING, waiting)
    assert not pod_status.running_and_ready(stuck)
    assert pod_status.summary(stuck) == "READY 1/2, STATUS ErrImageNeverPull"


def test_a_pending_pod_without_statuses_counts_its_declared_containers() -> None:
    assert pod_status.summary(pod(phase="Pending")) == "READY 0/2, STATUS Pending"


def test_restarts_add_up_and_a_crashed_container_shows_why() -> None:
    crashed = {"ready": False, "restartCount": 3, "state": {"terminated": {"exitCode": 1}}}
    row = pod_status.table(pod(RUNNING, crashed), age_seconds=61)[1].split()
    assert row == ["demo-1a2b", "1/2", "ExitCode:1", "3", "61s"]


def test_a_deleted_pod_is_terminating_whatever_its_containers_say() -> None:
    deleted = pod(RUNNING, RUNNING, deletionTimestamp="2025-01-01T00:00:00Z")
    assert pod_status.status(deleted) == "Terminating"
    assert not pod_status.running_and_ready(deleted)
