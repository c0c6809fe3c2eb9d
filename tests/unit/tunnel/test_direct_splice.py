"""``DirectTransport``'s listener: refuses what the allow-list does not name, splices the
rest to the local port byte for byte (real sockets, loopback only)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from webhook_dev.errors import PreflightError
from webhook_dev.tunnel.direct import AllowList, DirectSpec, DirectTransport, bind_listener


async def _echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client half-closes
        writer.write(data.upper())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _loopback_transport(allowed: list[str]) -> DirectTransport:
    """The transport on 127.0.0.1 (which bind_listener refuses for real use)."""
    transport = DirectTransport(DirectSpec("127.0.0.1", AllowList.of(allowed)))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    transport._listener = listener
    transport.port = listener.getsockname()[1]
    return transport


async def test_an_allowed_peer_is_spliced_with_half_close() -> None:
    server, port = await _echo_server()
    transport = _loopback_transport(["127.0.0.0/8"])
    address = await transport.carry(port)
    reader, writer = await asyncio.open_connection(address.ip, address.port)
    writer.write(b"x" * 300_000)  # more than one buffer: flow control in both legs
    writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 10)
    assert answer == b"X" * 300_000
    assert transport.accepted == 1 and transport.refused == 0
    writer.close()
    await transport.close()
    server.close()


async def test_a_peer_outside_the_allow_list_is_closed_and_counted() -> None:
    server, port = await _echo_server()
    transport = _loopback_transport(["10.0.0.1"])
    address = await transport.carry(port)
    reader, writer = await asyncio.open_connection(address.ip, address.port)
    writer.write(b"hello")
    try:
        answer = await asyncio.wait_for(reader.read(), 5)
    except ConnectionError:
        answer = b""  # a reset: the listener closed before reading
    assert answer == b""
    assert transport.refused == 1 and transport.accepted == 0
    assert transport.health() == {"refused": "1"}
    writer.close()
    await transport.close()
    server.close()


def test_loopback_and_unspecified_addresses_are_refused() -> None:
    for address in ("127.0.0.1", "0.0.0.0", "::"):
        with pytest.raises(PreflightError, match="never listens on all"):
            bind_listener(address, 0)


def test_an_address_this_machine_does_not_have_is_refused() -> None:
    with pytest.raises(PreflightError, match="not an address of this machine"):
        bind_listener("203.0.113.254", 0)  # TEST-NET-3: never assigned to a machine
