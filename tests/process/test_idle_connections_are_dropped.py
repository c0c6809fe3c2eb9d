"""Idle TLS connections, stalled handshakes and slowloris headers are dropped (issue 15,
finding 8). The real stack in-process on loopback, with its timeouts shortened."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path

import pytest

from tests.process.test_proxy_timing_resolution import Instant
from webhook_dev.serving import http_server, stack
from webhook_dev.serving.stack import ServingStack

SHORT = 1.0
PATIENCE = 6.0  # well past SHORT; before the fix, aiohttp waited an hour


def _closed_within(connection: socket.socket, seconds: float, trickle: bytes = b"") -> bool:
    """Whether the server closes ``connection`` within ``seconds`` (sending ``trickle`` a
    byte at a time meanwhile, as a slowloris would)."""
    until = time.monotonic() + seconds
    connection.settimeout(0.25)
    sent = 0
    while time.monotonic() < until:
        if sent < len(trickle):
            try:
                connection.sendall(trickle[sent : sent + 1])
            except OSError:
                return True
            sent += 1
        try:
            if connection.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except (ssl.SSLError, OSError):
            return True
    return False


@pytest.mark.parametrize("case", ["silent-tcp", "idle-tls", "slowloris"])
def test_the_proxy_drops_connections_that_never_finish_a_request(
    case: str, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack, "KEEPALIVE_TIMEOUT", SHORT)
    monkeypatch.setattr(http_server, "HANDSHAKE_TIMEOUT", SHORT)

    async def scenario() -> bool:
        async with ServingStack(Instant(), port=0) as serving:  # type: ignore[arg-type]
            ca = str(state_dir / "ca" / "ca.crt")
            return await asyncio.to_thread(_connect_and_wait, serving.port, ca, case)

    assert asyncio.run(scenario()), f"{case}: still open after {PATIENCE} s"


def _connect_and_wait(port: int, ca: str, case: str) -> bool:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    if case == "silent-tcp":
        with raw:
            return _closed_within(raw, PATIENCE)
    context = ssl.create_default_context(cafile=ca)
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        trickle = b"POST /mutate HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 40
        return _closed_within(tls, PATIENCE, trickle if case == "slowloris" else b"")
