"""The ``--direct`` transport: the cluster dials this machine, and only the cluster may.

When the apiserver can open a connection to the workstation (kind, k3d, minikube, Docker
Desktop, one network or a VPN), no tunnel is needed: the Endpoints point at
``<address>:<port>`` here. Listening beyond loopback is new for webhook-dev, so:

* the listener binds exactly one address, never ``0.0.0.0``; :meth:`prepare` refuses an
  address that is not this machine's, loopback, link-local or unspecified;
* each accepted connection's peer is checked against an allow-list (the control-plane
  nodes' addresses, learned from the cluster, plus ``--allow-from`` CIDRs); anyone else's
  connection is closed at once, before a byte is read, and counted for ``status``;
* an allowed connection is spliced, byte for byte, to the TLS proxy on 127.0.0.1. The
  proxy keeps listening on loopback only and TLS stays end-to-end: the apiserver verifies
  the serving certificate against the ``caBundle`` exactly as with ``--ssh``.

The splice is a pair of asyncio protocols writing straight into each other's transport
(no stream buffers, no task per chunk), with flow control: a leg whose write buffer fills
pauses reading on the other. asyncio and uvloop both set ``TCP_NODELAY`` on TCP sockets;
it is set again here because a small admission answer held back by Nagle against a
delayed ACK costs ~40 ms (docs/architecture.md, field notes).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from webhook_dev.addresses import usable_endpoint_ip
from webhook_dev.errors import PreflightError
from webhook_dev.tunnel.transport import DialAddress, TransportState

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AllowList:
    """Who may connect: networks (single addresses are /32 or /128). Pure."""

    networks: tuple[Network, ...]

    @classmethod
    def of(cls, entries: Sequence[str]) -> AllowList:
        """From addresses and CIDRs; ``ValueError`` names a bad entry."""
        networks = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError as error:
                raise ValueError(f"{entry!r} is not an IP address or CIDR") from error
        return cls(tuple(dict.fromkeys(networks)))

    def allows(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == net.version and address in net for net in self.networks)

    def __str__(self) -> str:
        return ", ".join(
            str(net.network_address) if net.num_addresses == 1 else str(net)
            for net in self.networks
        )


@dataclass(frozen=True)
class DirectSpec:
    """Where to listen and whom to let in; ``up`` fills it from flags and the cluster.

    :param address: the IP to listen on and put in the Endpoints (already chosen).
    :param allowed: the allow-list; empty refuses everyone (``up`` never passes that).
    :param port: the port on ``address``; 0 lets the kernel choose.
    :param allowed_because, address_because: for people: where each came from.
    """

    address: str
    allowed: AllowList
    port: int = 0
    allowed_because: str = ""
    address_because: str = ""


def source_address_toward(destination: str) -> str:
    """The address this machine sends from toward ``destination``: the kernel's routing
    decision, read with a UDP ``connect`` and ``getsockname`` (no packet is sent).

    :raises PreflightError: no route.
    """
    family = socket.AF_INET6 if ":" in destination else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((destination, 9))
        except OSError as error:
            raise PreflightError(
                f"this machine has no route to {destination}: {error.strerror or error}",
                hint="pass --address with the IP the cluster reaches this machine at",
            ) from error
        return str(probe.getsockname()[0])


def bind_listener(address: str, port: int) -> socket.socket:
    """A listening TCP socket on exactly ``address:port``.

    :raises PreflightError: not a usable address of this machine, or the port is taken.
    """
    if not usable_endpoint_ip(address):
        raise PreflightError(
            f"--direct cannot listen on {address}: kube-apiserver refuses loopback, "
            "link-local and unspecified Endpoints, and webhook-dev never listens on all "
            "addresses",
            hint="pass --address with this machine's IP on the network the cluster is on",
        )
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
        listener.listen(128)
        listener.setblocking(False)
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRNOTAVAIL:
            raise PreflightError(
                f"{address} is not an address of this machine",
                hint="pass --address with one of this machine's IPs (see `ip addr`)",
            ) from error
        if error.errno == errno.EADDRINUSE:
            raise PreflightError(
                f"port {port} on {address} is in use",
                hint="pass another --port, or 0 to let the system choose",
            ) from error
        raise PreflightError(f"cannot listen on {address}:{port}: {error}") from error
    return listener


class DirectTransport:
    """The ``--direct`` transport (see :class:`~webhook_dev.tunnel.transport.Transport`)."""

    def __init__(
        self,
        spec: DirectSpec,
        on_state: Callable[[TransportState, str], None] | None = None,
    ) -> None:
        self.spec = spec
        self.state = TransportState.CONNECTING
        self.reconnects = 0  # nothing to reconnect: the cluster dials us
        self.refused = 0
        self.accepted = 0
        self.port = spec.port
        self._on_state = on_state or (lambda state, detail: None)
        self._listener: socket.socket | None = None
        self._server: asyncio.AbstractServer | None = None

    async def prepare(self) -> str:
        """Bind ``address:port`` now, so a bad address or a taken port fails before any
        change to the cluster; nothing is accepted until :meth:`carry`."""
        if self._listener is None:
            self._listener = bind_listener(self.spec.address, self.spec.port)
            self.port = int(self._listener.getsockname()[1])
        return self.spec.address

    async def carry(self, local_port: int) -> DialAddress:
        """Accept the allowed peers' connections and splice them to 127.0.0.1:local_port."""
        await self.prepare()
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Inbound(self, local_port), sock=self._listener
        )
        self._set_state(
            TransportState.UP,
            f"{DialAddress(self.spec.address, self.port)} → 127.0.0.1:{local_port}, "
            f"only from {self.spec.allowed}",
        )
        return DialAddress(self.spec.address, self.port)

    def describe(self) -> dict[str, str]:
        """For the journal and ``status``: where we listen and whom we let in."""
        return {
            "kind": "direct",
            "master": self.spec.address,  # the Endpoints' IP, as for ssh
            "port": str(self.port),
            "allowed": str(self.spec.allowed),
        }

    def health(self) -> dict[str, str]:
        """Renewed with the Lease: connections refused (not in the allow-list) so far."""
        return {"refused": str(self.refused)}

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        elif self._listener is not None:
            self._listener.close()
        self._set_state(TransportState.CLOSED, "closed")

    def _refuse(self, peer: str) -> None:
        self.refused += 1
        if self.refused <= 3 or self.refused % 100 == 0:
            log.warning(
                "refused a connection from %s (not in the allow-list; %d so far)",
                peer,
                self.refused,
            )

    def _set_state(self, state: TransportState, detail: str) -> None:
        self.state = state
        log.info("direct %s: %s", state, detail)
        self._on_state(state, detail)


def _nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Leg(asyncio.Protocol):
    """One side of a splice: what it receives it writes to the other side's transport."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.other: _Leg | None = None
        self._early: list[bytes] = []
        self._early_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's do not subclass asyncio.Transport, hence the cast).
        self.transport = cast(asyncio.Transport, transport)
        _nodelay(transport)

    def link(self, other: _Leg) -> None:
        """Join the two legs; anything received before flows now."""
        self.other = other
        assert other.transport is not None
        for chunk in self._early:
            other.transport.write(chunk)
        self._early.clear()
        if self._early_eof:
            self._forward_eof()

    def data_received(self, data: bytes) -> None:
        if self.other is None or self.other.transport is None:
            self._early.append(data)
        else:
            self.other.transport.write(data)

    def eof_received(self) -> bool:
        if self.other is None:
            self._early_eof = True
        else:
            self._forward_eof()
        return True  # keep our side open for the answer: half-close, as TCP allows

    def _forward_eof(self) -> None:
        assert self.other is not None and self.other.transport is not None
        if self.other.transport.can_write_eof():
            self.other.transport.write_eof()
        else:
            self.other.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.close()

    # Flow control: our write buffer is the other leg's data; stop reading it while full.
    def pause_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.resume_reading()


class _Inbound(_Leg):
    """A connection from the cluster: checked, then spliced to the local proxy."""

    def __init__(self, owner: DirectTransport, local_port: int) -> None:
        super().__init__()
        self.owner = owner
        self.local_port = local_port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if peer else "?"
        if not self.owner.spec.allowed.allows(host):
            self.owner._refuse(host)
            self.transport.abort()
            return
        self.owner.accepted += 1
        self.transport.pause_reading()  # until the proxy side is connected
        asyncio.get_running_loop().create_task(self._connect_proxy())

    async def _connect_proxy(self) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        outbound = _Leg()
        try:
            await loop.create_connection(lambda: outbound, "127.0.0.1", self.local_port)
        except OSError as error:
            log.warning("cannot reach the local proxy on port %d: %s", self.local_port, error)
            self.transport.close()
            return
        if self.transport.is_closing():
            assert outbound.transport is not None
            outbound.transport.close()
            return
        outbound.link(self)
        self.link(outbound)
        self.transport.resume_reading()
