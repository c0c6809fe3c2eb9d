"""The relay program and ``RelayTransport`` together on loopback: the framing, the splice,
reconnects and the idle exit, with the port-forward replaced by a plain TCP dial to the
relay's control port (the lab tests run the real port-forward to a real Pod)."""

from __future__ import annotations

import ast
import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from webhook_dev.tunnel import relay_program
from webhook_dev.tunnel.relay import RelayTransport, program_text
from webhook_dev.tunnel.relay_manifests import RelaySpec
from webhook_dev.tunnel.relay_program import FramingError, Relay, decode, decode_hello, encode
from webhook_dev.tunnel.transport import TransportState

# --- framing ---------------------------------------------------------------------------------


def test_messages_round_trip_as_one_ascii_line() -> None:
    assert encode("NEW", 7) == b"NEW 7\n"
    assert decode(b"NEW 7\n") == ("NEW", ["7"])
    assert decode(b"READY 443\r\n") == ("READY", ["443"])


def test_hellos_name_control_or_one_connection() -> None:
    assert decode_hello(b"WDRELAY1 CONTROL\n") == ("CONTROL", None)
    assert decode_hello(b"WDRELAY1 DATA 12\n") == ("DATA", 12)


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"\n",
        b"GET / HTTP/1.1\r\n",
        b"WDRELAY2 CONTROL\n",
        b"WDRELAY1 DATA x\n",
        b"WDRELAY1 DATA\n",
        "WDRELAY1 CONTR\u00d6L\n".encode(),
        b"WDRELAY1 " + b"A" * 300,
    ],
)
def test_anything_else_is_refused(line: bytes) -> None:
    with pytest.raises(FramingError):
        decode_hello(line)


def test_a_message_cannot_smuggle_a_second_line() -> None:
    with pytest.raises(FramingError):
        encode("NEW", "1\nOK")


def test_the_program_runs_on_python_3_8_with_the_standard_library_alone() -> None:
    tree = ast.parse(program_text(), feature_version=(3, 8))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
    }
    assert imported - {"__future__"} <= set(sys.stdlib_module_names)
    assert "to_thread" not in program_text()  # 3.9+
    assert Path(relay_program.__file__).read_text() == program_text()


# --- the relay and the transport on loopback ---------------------------------------------------


async def _upper_server() -> tuple[asyncio.Server, int]:
    """Stands in for the local TLS proxy: answers each line upper-cased, keeps the connection."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


class LoopbackRelay:
    def __init__(self, **options: float) -> None:
        self.relay = Relay(port=0, control_port=0, listen_host="127.0.0.1", **options)
        self.task: asyncio.Task[int] | None = None

    async def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.relay.run())
        for _ in range(500):  # until both listeners have their ports
            if self.relay.port and self.relay.control_port:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the relay did not start listening")

    def dial(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.relay.control_port))

    async def call(self, text: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.relay.port)
        writer.write(text)
        answer = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        return answer


@pytest.fixture
async def relay() -> AsyncIterator[LoopbackRelay]:
    loopback = LoopbackRelay(ping_seconds=0.2, pending_seconds=2)
    await loopback.start()
    yield loopback
    assert loopback.task is not None
    loopback.task.cancel()


def _transport(relay: LoopbackRelay) -> RelayTransport:
    spec = RelaySpec(namespace="hooks", relay_id="test", port=relay.relay.port)
    return RelayTransport(None, spec, dial=relay.dial, pod_ip="10.244.0.9")


async def test_each_apiserver_connection_reaches_the_local_proxy(relay: LoopbackRelay) -> None:
    server, port = await _upper_server()
    transport = _transport(relay)
    address = await transport.carry(port)
    assert (address.ip, address.port) == ("10.244.0.9", relay.relay.port)
    assert transport.state is TransportState.UP
    answers = await asyncio.gather(*(relay.call(f"call {i}\n".encode()) for i in range(16)))
    assert sorted(answers) == sorted(f"CALL {i}\n".encode() for i in range(16))
    assert transport.carried == 16
    await transport.close()
    server.close()


async def test_without_a_client_the_relay_refuses_at_once(relay: LoopbackRelay) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.relay.port)
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    assert relay.relay.refused == 1


async def test_a_dropped_control_connection_reconnects_to_the_same_relay(
    relay: LoopbackRelay,
) -> None:
    server, port = await _upper_server()
    transport = _transport(relay)
    await transport.carry(port)
    assert await relay.call(b"before\n") == b"BEFORE\n"
    control = relay.relay._control
    assert control is not None
    control.transport.abort()  # the port-forward dies under us
    for _ in range(100):
        if transport.reconnects == 1 and transport.state is TransportState.UP:
            break
        await asyncio.sleep(0.05)
    assert transport.reconnects == 1
    assert await relay.call(b"after\n") == b"AFTER\n"
    await transport.close()
    server.close()


async def test_a_silent_control_connection_is_dropped_by_the_relay(relay: LoopbackRelay) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.relay.control_port)
    writer.write(b"WDRELAY1 CONTROL\n")
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"READY")
    await asyncio.sleep(1.0)  # three pings unanswered
    assert relay.relay._control is None
    writer.close()


async def test_the_relay_exits_by_itself_when_no_client_comes() -> None:
    loopback = LoopbackRelay(idle_seconds=0.3)
    await loopback.start()
    assert loopback.task is not None
    assert await asyncio.wait_for(loopback.task, 5) == 0


def test_the_shipped_file_runs_as_a_program_and_exits_when_idle(tmp_path: Path) -> None:
    """As the Pod runs it: ``python3 /relay/relay.py --port ... --idle-seconds ...``."""
    import subprocess

    program = tmp_path / "relay.py"
    program.write_text(program_text())
    argv = [sys.executable, str(program), "--port", "0", "--control-port", "0"]
    result = subprocess.run(
        [*argv, "--idle-seconds", "0.5"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "listening on port" in result.stderr
    assert result.stderr.rstrip().endswith("exiting")


async def test_losing_the_control_connection_closes_the_spliced_ones(relay: LoopbackRelay) -> None:
    """Their port-forwards are suspect: the apiserver must dial afresh, not reuse them."""
    server, port = await _upper_server()
    transport = _transport(relay)
    await transport.carry(port)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.relay.port)
    writer.write(b"kept\n")
    assert await asyncio.wait_for(reader.readline(), 5) == b"KEPT\n"
    control = relay.relay._control
    assert control is not None
    control.transport.abort()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, not left half-open
    writer.close()
    await transport.close()
    server.close()
