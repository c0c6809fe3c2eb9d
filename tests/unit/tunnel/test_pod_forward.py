"""PodForward chooses production's backend again when its Pod is gone (a rollout)."""

from __future__ import annotations

import asyncio
import socket

from webhook_dev.tunnel.pod_forward import PodForward
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
