"""The SSH connection's writes to sshd: asyncssh's ignore packet leaves with the next one.

asyncssh writes every SSH packet with its own ``transport.write``, and before each packet
after the key exchange it writes an empty ``MSG_IGNORE`` packet (a traffic-analysis
countermeasure). With ``TCP_NODELAY`` on — which the tunnel needs, or a small answer waits
~40 ms for a delayed ACK — each write is a syscall and a TCP segment of its own, and on
the master sshd wakes up, reads and decrypts twice for every chunk of an answer. Measured
on loopback (``bench/tunnel_bench.py``): two writes (36 bytes, then the data) per chunk.

:class:`BatchingConnector` opens the TCP connection to sshd through asyncssh's ``tunnel``
hook (an object with ``create_connection(factory, host, port)``) and puts
:class:`BatchingTransport` under the SSH connection. It holds back a *small* write made
when nothing is held (the ignore packet, at most :data:`SMALL` bytes) and sends it joined
to the next write, which asyncssh makes in the same call; a write of real data is never
held. Should no write follow, what is held leaves at the end of the loop turn (``call_soon``).

Holding every write until the end of the turn would join more, but it measured *slower*
in ``up``: there the same loop also runs the proxy and its subscribers, and the answer
waited behind the console line and the inspector's work queued in that turn.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

SMALL = 128  # bytes: an empty MSG_IGNORE is 28-84 bytes, by cipher and MAC


class BatchingTransport(asyncio.Transport):
    """A TCP transport that sends a small write joined to the write that follows it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._pending:  # the held ignore packet, and now its packet: one send, now
            self._pending.append(bytes(data))
            self.flush()
        elif len(data) <= SMALL:
            self._pending.append(bytes(data))
            self._loop.call_soon(self.flush)  # in case nothing follows
        elif not self._transport.is_closing():
            self._transport.write(data)

    def flush(self) -> None:
        """Send what is held (harmless when nothing is)."""
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def close(self) -> None:
        self.flush()  # close() sends what is buffered, as a transport's close does
        self._transport.close()

    def abort(self) -> None:
        # asyncssh aborts right after queueing its disconnect message: send that first.
        self.flush()
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)


class _Relay(asyncio.Protocol):
    """The real transport's protocol: hands every event to asyncssh's connection, which
    sees only the :class:`BatchingTransport`."""

    def __init__(self, inner: asyncio.Protocol) -> None:
        self.inner = inner
        self.batching: BatchingTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.batching = BatchingTransport(transport)  # type: ignore[arg-type]
        self.inner.connection_made(self.batching)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.batching is not None:
            self.batching._pending.clear()  # nowhere to send them
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class BatchingConnector:
    """asyncssh's ``tunnel=`` argument: open the TCP connection to sshd ourselves, with
    :class:`BatchingTransport` under the SSH connection.

    Used only when the client configuration names no ``ProxyJump``/``ProxyCommand`` (both
    also travel through this argument or replace it), so it is always a direct connection.
    """

    def __init__(self, family: int = socket.AF_UNSPEC, bind_address: str | None = None) -> None:
        self.family = family  # ssh_config's AddressFamily and BindAddress, as asyncssh reads them
        self.local_addr = (bind_address, 0) if bind_address else None

    async def create_connection(
        self, session_factory: Any, remote_host: str, remote_port: int
    ) -> tuple[asyncio.BaseTransport, Any]:
        """asyncssh's tunnel interface: returns (transport, the factory's session)."""
        loop = asyncio.get_running_loop()
        session = session_factory()
        transport, _ = await loop.create_connection(
            lambda: _Relay(session),
            remote_host,
            remote_port,
            family=self.family,
            local_addr=self.local_addr,
        )
        return transport, session

    def close(self) -> None:
        """asyncssh closes a tunnel it opened itself only; there is nothing of ours to close."""

    async def wait_closed(self) -> None:
        return None

    def __repr__(self) -> str:
        return "a direct TCP connection (the ignore packet joined to the next)"
