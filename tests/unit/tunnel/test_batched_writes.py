"""The SSH connection's ignore packet leaves joined to the next write, data is never held,
and nothing is lost on close;
the tunnel's fast-path options give way to what the user's ssh_config says."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from webhook_dev.tunnel import ssh
from webhook_dev.tunnel.batched_writes import BatchingConnector, BatchingTransport


class RecordingTransport(asyncio.Transport):
    """Stands in for the TCP transport: remembers every write and what came after it."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Any] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.events.append(bytes(data))

    def write_eof(self) -> None:
        self.events.append("eof")

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.events.append("close")
        self.closing = True

    def abort(self) -> None:
        self.events.append("abort")
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("192.0.2.1", 22)}.get(name, default)


async def next_turn() -> None:
    await asyncio.sleep(0)


IGNORE = b"i" * 36  # an empty MSG_IGNORE under AES-GCM
DATA = b"d" * 1052  # an answer's chunk


async def test_the_ignore_packet_leaves_joined_to_the_packet_after_it_at_once() -> None:
    inner = RecordingTransport()
    batching = BatchingTransport(inner)
    batching.write(IGNORE)
    assert inner.events == []
    assert batching.get_write_buffer_size() == 7 + len(IGNORE)
    batching.write(bytearray(DATA))
    assert inner.events == [IGNORE + DATA]  # in the same call: the answer never waits
    batching.write(b"")
    batching.write(IGNORE)
    batching.write(b"window-adjust")  # small too, but it follows a held write
    assert inner.events == [IGNORE + DATA, IGNORE + b"window-adjust"]
    await next_turn()
    assert len(inner.events) == 2  # nothing left to send


async def test_data_is_never_held() -> None:
    inner = RecordingTransport()
    batching = BatchingTransport(inner)
    batching.write(DATA)
    batching.write(DATA)
    assert inner.events == [DATA, DATA]


async def test_a_small_write_that_nothing_follows_leaves_at_the_end_of_the_turn() -> None:
    inner = RecordingTransport()
    batching = BatchingTransport(inner)
    batching.write(b"kex-init")  # before encryption: no ignore packets, no packet after
    assert inner.events == []
    await next_turn()
    assert inner.events == [b"kex-init"]


@pytest.mark.parametrize("ending", ["abort", "close", "write_eof"])
async def test_what_was_written_goes_out_before_the_connection_ends(ending: str) -> None:
    """asyncssh queues its disconnect message, then aborts: the message must still leave."""
    inner = RecordingTransport()
    batching = BatchingTransport(inner)
    batching.write(b"disconnect")  # small: held
    getattr(batching, ending)()
    expected = {"abort": "abort", "close": "close", "write_eof": "eof"}[ending]
    assert inner.events == [b"disconnect", expected]
    await next_turn()
    assert inner.events == [b"disconnect", expected]  # not sent twice


async def test_nothing_is_written_to_a_transport_that_is_closing() -> None:
    inner = RecordingTransport()
    batching = BatchingTransport(inner)
    batching.write(b"late")
    inner.closing = True
    await next_turn()
    assert inner.events == []


async def test_extra_info_is_the_real_connections() -> None:
    """asyncssh reads the peer (the master's address) and the socket through it."""
    batching = BatchingTransport(RecordingTransport())
    assert batching.get_extra_info("peername") == ("192.0.2.1", 22)
    assert batching.get_extra_info("socket", "none") == "none"


class Session(asyncio.Protocol):
    """What asyncssh's connection sees: the transport it was given, and the bytes."""

    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self.received = bytearray()
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += data

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


async def test_the_connector_carries_bytes_both_ways_over_real_tcp() -> None:
    reads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readexactly(6)
        reads.append(data)
        writer.write(b"answer")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        _, session = await BatchingConnector().create_connection(Session, "127.0.0.1", port)
        assert isinstance(session.transport, BatchingTransport)
        assert session.transport.get_extra_info("peername")[1] == port
        session.transport.write(b"ask")  # type: ignore[attr-defined]
        session.transport.write(b"ed!")  # type: ignore[attr-defined]
        await asyncio.wait_for(session.lost, 5)
        assert reads == [b"asked!"]
        assert bytes(session.received) == b"answer"
    finally:
        server.close()
        await server.wait_closed()


def client_config(tmp_path: Any, text: str) -> Any:
    path = tmp_path / "ssh_config"
    path.write_text(text)
    return ssh._client_config("master", {"config": [str(path)]})


def test_aes_gcm_first_and_batched_writes_when_the_config_says_nothing(tmp_path: Any) -> None:
    options = ssh._fast_path_options(client_config(tmp_path, "Host master\n  Port 2222\n"))
    assert options["encryption_algs"][0] == "aes128-gcm@openssh.com"
    assert "chacha20-poly1305@openssh.com" in options["encryption_algs"]  # still accepted
    assert isinstance(options["tunnel"], BatchingConnector)


def test_the_users_ciphers_and_bind_address_are_honoured(tmp_path: Any) -> None:
    config = client_config(
        tmp_path,
        "Host master\n  Ciphers chacha20-poly1305@openssh.com\n  BindAddress 127.0.0.2\n"
        "  AddressFamily inet\n",
    )
    options = ssh._fast_path_options(config)
    assert "encryption_algs" not in options  # asyncssh takes Ciphers from the config
    assert options["tunnel"].local_addr == ("127.0.0.2", 0)
    assert options["tunnel"].family == 2  # AF_INET


@pytest.mark.parametrize("line", ["ProxyJump bastion", "ProxyCommand nc %h %p"])
def test_a_proxy_in_the_config_keeps_asyncssh_s_own_connection(tmp_path: Any, line: str) -> None:
    options = ssh._fast_path_options(client_config(tmp_path, f"Host master\n  {line}\n"))
    assert "tunnel" not in options
