"""The ``--ssh`` tunnel against a real OpenSSH sshd on loopback (no lab, no Kubernetes).

sshd is configured as the lab runs it (:func:`webhook_dev.lab.configs.sshd_config`); the
tunnel reads an ssh_config in ``$HOME`` as it would on a developer's machine. What is
checked here is what the fast path changed (issue 14): the forward still carries bytes
both ways, AES-GCM is negotiated when the config names no ciphers, and the tunnel comes
back on the same port after its connection dies (the connection is now opened by our own
connector, on every reconnect too).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from webhook_dev.lab import configs
from webhook_dev.lab.ssh_keys import SSHKeyPair
from webhook_dev.tunnel.ssh import SshSpec, SshTunnel
from webhook_dev.tunnel.transport import TransportState

SSHD = "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path(SSHD).exists(),
    reason="needs root and OpenSSH's sshd (its own config, as the lab runs it)",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture
def sshd(monkeypatch: pytest.MonkeyPatch) -> Iterator[subprocess.Popen[bytes]]:
    """sshd on 127.0.0.1 and an ssh_config (``Host master``) in a fresh ``$HOME``.

    The files live under /run: sshd's StrictModes refuses keys below a world-writable /tmp.
    """
    work = Path(tempfile.mkdtemp(prefix="webhook-dev-sshd-", dir="/run"))
    work.chmod(0o700)
    port = _free_port()
    host, client = SSHKeyPair.create("test host"), SSHKeyPair.create("test client")
    for name, key in (("host_key", host), ("id", client)):
        (work / name).write_bytes(key.private_openssh)
        (work / name).chmod(0o600)
    (work / "authorized_keys").write_text(client.public_line + "\n")
    home = work / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    (work / "sshd_config").write_text(
        configs.sshd_config(
            listen_address="127.0.0.1",
            port=port,
            host_key=str(work / "host_key"),
            authorized_keys=str(work / "authorized_keys"),
            pid_file=str(work / "sshd.pid"),
            gateway_ports="clientspecified",
            session_home=str(home),
        )
    )
    known = work / "known_hosts"
    known.write_text(
        configs.known_hosts_line(host="127.0.0.1", port=port, public_key_line=host.public_line)
    )
    (home / ".ssh" / "config").write_text(
        f"Host master\n  HostName 127.0.0.1\n  Port {port}\n  User root\n"
        f"  IdentityFile {work / 'id'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {known}\n  GlobalKnownHostsFile {known}\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    server = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(work / "sshd_config")], stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield server
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
async def answering() -> AsyncIterator[int]:
    """A local server standing in for the proxy: answers each request with its length."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(b"got %d\n" % len(data))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def _ask(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = await asyncio.wait_for(reader.read(100), 10)
            if not chunk:
                break
            answer += chunk
        return answer
    finally:
        writer.close()


@pytest.mark.usefixtures("sshd")
async def test_the_forward_carries_calls_over_aes_gcm(answering: int) -> None:
    tunnel = SshTunnel(SshSpec("master", master_address="127.0.0.1"))
    try:
        address = await tunnel.carry(answering)
        assert tunnel.state is TransportState.UP
        assert address.ip == "127.0.0.1" and address.port > 0
        assert await _ask(address.port, b"x" * 4000) == b"got 4000\n"
        assert await _ask(address.port, b"small") == b"got 5\n"
        connection = tunnel._conn
        assert connection is not None
        assert connection.get_extra_info("send_cipher") == "aes128-gcm@openssh.com"
        assert connection.get_extra_info("peername")[0] == "127.0.0.1"
    finally:
        await tunnel.close()


async def test_the_tunnel_comes_back_on_the_same_port(
    sshd: subprocess.Popen[bytes], answering: int
) -> None:
    tunnel = SshTunnel(SshSpec("master", master_address="127.0.0.1"))
    try:
        address = await tunnel.carry(answering)
        for session in _children(sshd.pid):  # the connection's sshd: gone, as on a network cut
            os.kill(session, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while tunnel.reconnects == 0 or tunnel.state is not TransportState.UP:
            assert time.monotonic() < deadline, f"still {tunnel.state} after 20 s"
            await asyncio.sleep(0.1)
        assert tunnel.remote_port == address.port
        assert await _ask(address.port, b"again") == b"got 5\n"
    finally:
        await tunnel.close()
