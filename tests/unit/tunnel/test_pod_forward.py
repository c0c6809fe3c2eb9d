"""PodForward chooses production's backend again when its Pod is gone (a rollout), and
``selected_backend`` finds a redirected Service's Pods by its selector."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from webhook_dev.errors import PreflightError
from webhook_dev.tunnel.pod_forward import PodForward, selected_backend
from webhook_dev.tunnel.relay import Dial


def _gone() -> socket.socket:
    raise OSError("cannot port-forward to Pod team/old: 404 Not Found")


async def _echo_through(forward: PodForward) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", forward.port)
    writer.write(b"ping")
    await writer.drain()
    data = await reader.read(4)
    writer.close()
    return data


def test_a_failed_dial_chooses_once_for_all_connections_and_says_where() -> None:
    said: list[str] = []
    chosen: list[str] = []
    backends: list[socket.socket] = []

    def new_pod() -> socket.socket:
        ours, theirs = socket.socketpair()
        backends.append(theirs)
        theirs.sendall(b"pong")
        return ours

    def select() -> tuple[Dial, str]:
        chosen.append("new")
        return new_pod, "Pod team/new:8443"

    async def run() -> list[bytes]:
        forward = PodForward(_gone, "Pod team/old:8443", select, said.append)
        await forward.start()
        try:
            return await asyncio.gather(*(_echo_through(forward) for _ in range(4)))
        finally:
            await forward.close()

    answers = asyncio.run(run())
    assert answers == [b"pong"] * 4
    assert chosen == ["new"]  # four connections failed at once; one choice
    assert said == [
        "production reached through Pod team/new:8443 now (Pod team/old:8443: "
        "cannot port-forward to Pod team/old: 404 Not Found)"
    ]
    for backend in backends:
        backend.close()


def test_without_select_a_failed_dial_closes_the_connection() -> None:
    async def run() -> bytes:
        forward = PodForward(_gone, "Pod team/old:8443")
        await forward.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", forward.port)
            data = await reader.read(4)
            writer.close()
            return data
        finally:
            await forward.close()

    assert asyncio.run(run()) == b""


class Pods:
    """A cluster that lists these Pods (whatever the selector: the test checks it)."""

    def __init__(self, *pods: dict[str, Any]) -> None:
        self.pods = list(pods)
        self.asked: list[tuple[str, str | None]] = []

    def list(self, collection: str, *, label_selector: str | None = None) -> list[Any]:
        self.asked.append((collection, label_selector))
        return self.pods


def pod(name: str, *, ready: bool = True, deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-04T00:00:00Z"
    return {
        "metadata": metadata,
        "spec": {"containers": [{"ports": [{"name": "webhook", "containerPort": 9443}]}]},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


SERVICE = {
    "metadata": {"namespace": "website", "name": "website"},
    "spec": {
        "selector": {"app": "website", "tier": "webhook"},
        "ports": [{"port": 443, "targetPort": "webhook"}],
    },
}


def test_the_selector_picks_a_ready_pod_that_is_not_going_away_and_its_named_port() -> None:
    cluster = Pods(pod("old", deleting=True), pod("starting", ready=False), pod("serving"))
    chosen = selected_backend(cluster, SERVICE, 443)  # type: ignore[arg-type]
    assert chosen == ("website", "serving", 9443)
    assert cluster.asked == [("/api/v1/namespaces/website/pods", "app=website,tier=webhook")]


def test_no_ready_pod_or_no_selector_is_a_preflight_error_saying_which() -> None:
    with pytest.raises(PreflightError, match="selects no Ready Pod serving port 443"):
        selected_backend(Pods(pod("starting", ready=False)), SERVICE, 443)  # type: ignore[arg-type]
    selectorless = {**SERVICE, "spec": {"ports": SERVICE["spec"]["ports"]}}
    with pytest.raises(PreflightError, match="has no selector"):
        selected_backend(Pods(), selectorless, 443)  # type: ignore[arg-type]
