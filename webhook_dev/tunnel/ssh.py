"""The reverse SSH tunnel from the master to the workstation (asyncssh).

What ``ssh -N -R <master-ip>:<port>:127.0.0.1:<local>`` does, with the checks it lacks:

* OpenSSH's client configuration is honoured: ``~/.ssh/config`` then ``/etc/ssh/ssh_config``
  (HostName, User, Port, IdentityFile, ProxyJump, ...), the agent, and host keys from
  ``UserKnownHostsFile``/``GlobalKnownHostsFile`` — verified strictly. An unknown key is
  refused unless ``accept_new_host_key`` (like ``StrictHostKeyChecking=accept-new``); a
  *changed* key is always refused. Password and keyboard-interactive auth are off: a prompt
  must never appear in the middle of a live status view.
* The forward binds the master's routable address, because kube-apiserver refuses loopback
  Endpoints. sshd with ``GatewayPorts no`` silently binds loopback instead, so after
  forwarding we *check*: ask sshd to connect to ``<master-address>:<port>`` itself. Refused
  means the listener is on loopback only, and we say which sshd setting fixes it.
* A session with a pty is kept open on the same connection: sshd enables ``TCP_NODELAY`` on
  a connection only when a pty session is opened on it, and without it a small share of
  webhook calls stall ~40 ms in Nagle/delayed-ACK interplay (docs/architecture.md, field
  notes; the ">30 ms" column of ``bench/bench_up.py`` would show the stalls coming back).
* Each call crosses asyncssh twice, in Python: where ssh_config does not decide otherwise,
  AES-GCM is preferred and asyncssh's ignore packet leaves joined to the packet after it
  (:func:`_fast_path_options`; measured against ``ssh -N -R`` by ``bench/tunnel_bench.py``).
* Keepalives detect a dead path; the tunnel reconnects with backoff and asks for the same
  remote port, so the Endpoints written at ``up`` stay right.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import asyncssh

from webhook_dev.addresses import usable_endpoint_ip
from webhook_dev.errors import PreflightError, TunnelError
from webhook_dev.tunnel.batched_writes import BatchingConnector
from webhook_dev.tunnel.transport import DialAddress, TransportState

log = logging.getLogger(__name__)

USER_CONFIG = Path("~/.ssh/config")
SYSTEM_CONFIG = Path("/etc/ssh/ssh_config")
DEFAULT_USER_KNOWN_HOSTS = ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"]
DEFAULT_GLOBAL_KNOWN_HOSTS = ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]
_BACKOFF = [0.5, 1, 2, 4, 8]
PREFERRED_CIPHERS = [
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
]


@dataclass(frozen=True)
class SshSpec:
    destination: str  # what you would type after `ssh`: host, user@host or a config alias
    remote_port: int = 0  # 0: let sshd choose, then keep it across reconnects
    master_address: str | None = None  # default: the address sshd was reached on
    accept_new_host_key: bool = False
    keepalive_interval: float = 5.0
    keepalive_count_max: int = 3
    connect_timeout: float = 15.0


def config_files() -> list[str]:
    """OpenSSH's order: the user's file first (first value wins), then the system's."""
    return [
        str(path.expanduser())
        for path in (USER_CONFIG, SYSTEM_CONFIG)
        if os.access(path.expanduser(), os.R_OK)
    ]


def split_destination(destination: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` or ``ssh://user@host:port`` into its parts."""
    text = destination.removeprefix("ssh://")
    user, _, host = text.rpartition("@")
    port = None
    if host.count(":") == 1:
        host, port_text = host.split(":")
        port = int(port_text)
    return user or None, host, port


class SshTunnel:
    """The ``--ssh`` transport: one reverse forward on the master, kept alive until
    :meth:`close` (see :class:`~webhook_dev.tunnel.transport.Transport`)."""

    def __init__(
        self,
        spec: SshSpec,
        on_state: Callable[[TransportState, str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.state = TransportState.CONNECTING
        self.master_address: str | None = spec.master_address
        self.remote_port: int = spec.remote_port
        self.reconnects = 0
        self.local_port = 0
        self._on_state = on_state or (lambda state, detail: None)
        self._conn: asyncssh.SSHClientConnection | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._closing = False

    async def prepare(self) -> str:
        """Connect and learn the master's address; no forward yet. Returns the address.

        Separate from :meth:`carry` so the caller can issue a serving certificate for that
        address (``url:`` webhooks) before it starts serving.
        """
        self._conn = await self._connect()
        if self.master_address is None:
            self.master_address = await _server_address(self._conn)
        return self.master_address

    async def carry(self, local_port: int) -> DialAddress:
        """Forward ``<master>:<remote_port>`` to ``127.0.0.1:local_port``, verified; keep it up.

        The port is sshd's choice when ``remote_port`` was 0, and kept across reconnects.
        """
        self.local_port = local_port
        if self._conn is None:
            await self.prepare()
        await self._forward_on(self._conn_or_fail())
        self._keeper = asyncio.create_task(self._keep_alive(), name="tunnel-keeper")
        assert self.master_address is not None
        return DialAddress(self.master_address, self.remote_port)

    def describe(self) -> dict[str, str]:
        """What the journal and ``status`` show: ``master:port via destination``."""
        return {
            "kind": "ssh",
            "destination": self.spec.destination,
            "master": self.master_address or "",
            "port": str(self.remote_port),
        }

    def health(self) -> dict[str, str]:
        """Nothing beyond the state, which the session reports itself."""
        return {}

    async def close(self) -> None:
        self._closing = True
        if self._keeper:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        if self._conn:
            self._conn.close()
            with contextlib.suppress(Exception):
                await self._conn.wait_closed()
        self._set_state(TransportState.CLOSED, "closed")

    # --- connection -------------------------------------------------------------------------

    def _conn_or_fail(self) -> asyncssh.SSHClientConnection:
        if self._conn is None:
            raise TunnelError("the SSH connection is not open")
        return self._conn

    async def _forward_on(self, conn: asyncssh.SSHClientConnection) -> None:
        try:
            listener = await self._forward(conn)
            self.remote_port = listener.get_port()
            await self._check_gateway_ports(conn)
            await _hold_pty_session(conn)
        except BaseException:
            conn.close()
            raise
        self._set_state(
            TransportState.UP,
            f"{self.master_address}:{self.remote_port} → 127.0.0.1:{self.local_port}",
        )

    async def _reestablish(self) -> None:
        conn = await self._connect()
        self._conn = conn
        await self._forward_on(conn)

    async def _connect(self) -> asyncssh.SSHClientConnection:
        user, host, port = split_destination(self.spec.destination)
        options: dict[str, Any] = {
            "config": config_files(),
            "password_auth": False,
            "kbdint_auth": False,
            "keepalive_interval": self.spec.keepalive_interval,
            "keepalive_count_max": self.spec.keepalive_count_max,
            "connect_timeout": self.spec.connect_timeout,
        }
        if user:
            options["username"] = user
        if port:
            options["port"] = port
        config = _client_config(host, options)
        options["known_hosts"] = _known_hosts_files(config)
        options.update(_fast_path_options(config))
        try:
            return await asyncssh.connect(host, **options)
        except asyncssh.HostKeyNotVerifiable as error:
            known = await _host_is_known(host, options)
            if self.spec.accept_new_host_key and not known:
                return await self._connect_accepting_new_key(host, options)
            if known:
                raise TunnelError(
                    f"the host key of {self.spec.destination} does not match the one in "
                    "known_hosts: refusing to connect (the master was reinstalled, or someone "
                    "is in the middle)",
                    hint="verify the new key out of band, then replace the old line in "
                    "known_hosts (ssh-keygen -R HOST)",
                ) from error
            raise TunnelError(
                f"the host key of {self.spec.destination} is not in known_hosts",
                hint="verify it and add it (e.g. connect once with ssh), or pass "
                "--accept-new-host-key to trust a host seen for the first time",
            ) from error
        except asyncssh.PermissionDenied as error:
            raise TunnelError(
                f"SSH to {self.spec.destination} refused our keys ({error.reason})",
                hint="load a key into ssh-agent or set IdentityFile in ~/.ssh/config; "
                "webhook-dev never asks for passwords",
            ) from error
        except (OSError, asyncssh.Error, TimeoutError) as error:
            raise TunnelError(
                f"cannot connect to sshd at {self.spec.destination}: {error}",
                hint="check the address, port and that sshd runs on the master",
            ) from error

    async def _connect_accepting_new_key(
        self, host: str, options: dict[str, Any]
    ) -> asyncssh.SSHClientConnection:
        """accept-new: trust a host with *no* known key, and remember it in known_hosts."""
        conn = await asyncssh.connect(host, **dict(options, known_hosts=None))
        key = conn.get_server_host_key()
        if key is not None:
            port = options.get("port") or conn.get_extra_info("peername")[1]
            name = host if port in (None, 22) else f"[{host}]:{port}"
            line = f"{name} {key.export_public_key().decode().strip()}\n"
            known = await asyncio.to_thread(_remember_host_key, line)
            log.warning("added the host key of %s to %s", host, known)
        return conn

    async def _forward(self, conn: asyncssh.SSHClientConnection) -> asyncssh.SSHListener:
        try:
            return await conn.forward_remote_port(
                self.master_address, self.remote_port, "127.0.0.1", self.local_port
            )
        except asyncssh.ChannelListenError as error:
            raise TunnelError(
                f"sshd refused to listen on {self.master_address}:{self.remote_port}: {error}",
                hint="the port may be in use on the master, or AllowTcpForwarding forbids "
                "remote forwards; pass another --remote-port or allow forwarding in sshd_config",
            ) from error

    async def _check_gateway_ports(self, conn: asyncssh.SSHClientConnection) -> None:
        """Ask sshd itself to connect to the forward's address: proves what it bound."""
        try:
            _, writer = await conn.open_connection(self.master_address, self.remote_port)
        except asyncssh.ChannelOpenError as error:
            if error.code == asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED:
                log.warning("sshd forbids local forwards; cannot check the listener directly")
                return
            raise PreflightError(
                f"sshd bound the tunnel to loopback only, not {self.master_address}:"
                f"{self.remote_port}: its GatewayPorts setting is 'no', and kube-apiserver "
                "cannot use a loopback endpoint",
                hint="on the master, set `GatewayPorts clientspecified` in /etc/ssh/sshd_config "
                "(lets the client pick the address; `yes` also works) and reload sshd",
            ) from error
        writer.close()

    async def _keep_alive(self) -> None:
        while not self._closing:
            assert self._conn is not None
            await self._conn.wait_closed()
            if self._closing:
                return
            self._set_state(TransportState.RECONNECTING, "connection lost")
            attempt = 0
            while not self._closing:
                await asyncio.sleep(_BACKOFF[min(attempt, len(_BACKOFF) - 1)])
                attempt += 1
                try:
                    await self._reestablish()
                except (TunnelError, PreflightError, OSError, asyncssh.Error) as error:
                    self._set_state(TransportState.RECONNECTING, f"attempt {attempt}: {error}")
                    continue
                self.reconnects += 1
                break

    def _set_state(self, state: TransportState, detail: str) -> None:
        self.state = state
        log.info("tunnel %s: %s", state, detail)
        self._on_state(state, detail)


async def _server_address(conn: asyncssh.SSHClientConnection) -> str:
    """The master's address for the Endpoints: the IP we reached sshd on, when usable.

    That needs no shell on the master (a login shell's rc files can be slow or hang, and
    some masters have none). Behind a ProxyJump the peer is not an IP of ours to use, so
    ask sshd's ``$SSH_CONNECTION`` (third field) instead. Behind NAT neither is right:
    ``--master-address`` says it, and the dry-run probe after redirecting proves it.
    """
    peer = str(conn.get_extra_info("peername")[0])
    if usable_endpoint_ip(peer):
        return peer
    try:
        result = await conn.run('printf %s "$SSH_CONNECTION"', check=True, timeout=5)
        fields = str(result.stdout).split()
        if len(fields) == 4 and usable_endpoint_ip(fields[2]):
            return fields[2]
    except (asyncssh.Error, TimeoutError, OSError):
        pass
    raise TunnelError(
        f"cannot tell the master's IP address (connected to {peer!r})",
        hint="pass --master-address with the IP kube-apiserver reaches the master on",
    )


async def _hold_pty_session(conn: asyncssh.SSHClientConnection) -> None:
    """Keep a pty session open so sshd turns on TCP_NODELAY for this connection."""
    with contextlib.suppress(asyncssh.Error):
        await conn.create_process("cat", term_type="dumb")


def _client_config(host: str, options: dict[str, Any]) -> asyncssh.config.SSHConfig:
    """What the OpenSSH client configuration says for ``host`` (as asyncssh reads it)."""
    return asyncssh.config.SSHClientConfig.load(
        None,
        options["config"],
        False,
        False,
        False,
        os.environ.get("USER", "root"),
        options.get("username", ()),
        host,
        options.get("port", ()),
    )


def _fast_path_options(config: asyncssh.config.SSHConfig) -> dict[str, Any]:
    """asyncssh options that make each forwarded call cheaper, where the user's
    configuration does not decide otherwise (measured in ``bench/tunnel_bench.py``):

    * AES-GCM first: asyncssh's ChaCha20-Poly1305 builds four cipher contexts in Python for
      every packet (~16 us for a small one against ~2.5 us for AES-GCM, one call into
      OpenSSL); sshd's OpenSSL does AES-GCM in hardware. Both are OpenSSH's defaults, so
      any sshd accepts them; a ``Ciphers`` line in ssh_config still wins.
    * our own TCP connection to sshd (asyncssh's ``tunnel`` hook), which sends asyncssh's
      ignore packet joined to the packet after it, one segment where asyncssh makes two
      (:mod:`webhook_dev.tunnel.batched_writes`) — unless a ``ProxyJump`` or
      ``ProxyCommand`` carries the connection instead.
    """
    options: dict[str, Any] = {}
    if not config.get("Ciphers"):
        options["encryption_algs"] = PREFERRED_CIPHERS
    if not config.get("ProxyJump") and not config.get("ProxyCommand"):
        options["tunnel"] = BatchingConnector(
            family=cast(int, config.get("AddressFamily", socket.AF_UNSPEC)),
            bind_address=cast(str | None, config.get("BindAddress")),
        )
    return options


def _known_hosts_files(config: asyncssh.config.SSHConfig) -> list[str]:
    """The files OpenSSH would read for the host: configured ones, else the defaults."""
    user_files = cast(list[str], config.get("UserKnownHostsFile") or DEFAULT_USER_KNOWN_HOSTS)
    global_files = cast(list[str], config.get("GlobalKnownHostsFile") or DEFAULT_GLOBAL_KNOWN_HOSTS)
    paths = [os.path.expanduser(str(path)) for path in [*user_files, *global_files]]
    return [path for path in paths if os.access(path, os.R_OK)]


async def _host_is_known(host: str, options: dict[str, Any]) -> bool:
    """Whether any known_hosts file names this host at all (then a mismatch is a *change*)."""
    for path in options["known_hosts"]:
        try:
            known = asyncssh.read_known_hosts(path)
        except (OSError, ValueError):
            continue
        trusted, *_ = known.match(host, "", options.get("port") or 22)
        if trusted:
            return True
    return False


def _remember_host_key(line: str) -> Path:
    known = Path("~/.ssh/known_hosts").expanduser()
    known.parent.mkdir(mode=0o700, exist_ok=True)
    with known.open("a") as file:
        file.write(line)
    return known
