"""The relay that ``up --relay`` runs in a Pod: it splices the apiserver's connections to
connections the workstation opens through the apiserver's port-forward. Bytes only.

This file is shipped to the Pod as it is, in a ConfigMap, and run with ``python3`` from
whatever image ``--relay-image`` names, so it depends on nothing but Python's standard
library and runs on Python 3.8 and later. It never holds a key: TLS is end to end between
the apiserver and the workstation's proxy, the relay sees ciphertext.

Two listeners:

* the *relay port* (``--port``, 443 by default: GKE private clusters let the control
  plane reach nodes on 443 and 10250 only) on all of the Pod's addresses, where the
  apiserver dials (the Service's Endpoints point at the Pod's IP and this port);
* the *control port* on 127.0.0.1 only, which nothing in the cluster can reach: the
  kubelet's port-forward dials the Pod's loopback, so only someone allowed
  ``pods/portforward`` on this Pod gets here.

The protocol on the control port, one ASCII line per message (:func:`encode`/:func:`decode`):

1. the workstation opens a *control* connection: ``WDRELAY1 CONTROL``; the relay answers
   ``READY <relay-port>``; a newer control connection replaces an older one;
2. for each connection the apiserver opens to the relay port, the relay sends
   ``NEW <id>`` on the control connection and holds the connection (unread) for up to
   ``--pending-seconds``;
3. the workstation opens one more port-forward connection for it: ``WDRELAY1 DATA <id>``;
   the relay answers ``OK`` and from then on copies bytes both ways, or ``GONE`` if that
   connection was closed or waited too long;
4. ``PING`` every ``--ping-seconds`` from the relay, ``PONG`` back: either side that
   hears nothing for three pings drops the control connection (a dead port-forward does
   not always close).

With no control connection the relay refuses the apiserver's connections at once (the
webhook entry's ``failurePolicy: Ignore`` covers the gap while the workstation
reconnects), and after ``--idle-seconds`` without one it exits by itself, so a relay
whose ``up`` was killed never lingers on a shared cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import socket
import sys
import time

MAGIC = "WDRELAY1"
MAX_LINE = 256
CONTROL = "CONTROL"
DATA = "DATA"
READY = "READY"
NEW = "NEW"
OK = "OK"
GONE = "GONE"
PING = "PING"
PONG = "PONG"

DEFAULT_PORT = 443
DEFAULT_CONTROL_PORT = 8471
DEFAULT_IDLE_SECONDS = 300.0
DEFAULT_PENDING_SECONDS = 10.0
DEFAULT_PING_SECONDS = 10.0
CHUNK = 256 * 1024


class FramingError(ValueError):
    """A line that is not a message of this protocol."""


def encode(verb: str, *args: object) -> bytes:
    """One message: the verb and its arguments, space-separated, ``\\n``-terminated."""
    line = " ".join([verb, *(str(arg) for arg in args)])
    if "\n" in line or len(line) >= MAX_LINE:
        raise FramingError(f"message too long or multi-line: {line[:40]!r}")
    return (line + "\n").encode("ascii")


def decode(line: bytes) -> tuple[str, list[str]]:
    """The verb and arguments of one line (with or without its ``\\n``).

    :raises FramingError: empty, too long, not ASCII.
    """
    if len(line) > MAX_LINE:
        raise FramingError(f"line longer than {MAX_LINE} bytes")
    try:
        text = line.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise FramingError("line is not ASCII") from error
    parts = text.split(" ")
    if not parts or not parts[0]:
        raise FramingError("empty line")
    return parts[0], parts[1:]


def decode_hello(line: bytes) -> tuple[str, int | None]:
    """The first line of a control-port connection: ``(CONTROL, None)`` or ``(DATA, id)``.

    :raises FramingError: anything else (another program, another protocol version).
    """
    verb, args = decode(line)
    if verb != MAGIC or not args:
        raise FramingError(f"not a webhook-dev relay client (expected {MAGIC})")
    if args[0] == CONTROL and len(args) == 1:
        return CONTROL, None
    if args[0] == DATA and len(args) == 2 and args[1].isdigit():
        return DATA, int(args[1])
    raise FramingError(f"unknown hello {' '.join(args)!r}")


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF (or an error), then pass the EOF on."""
    try:
        while True:
            chunk = await reader.read(CHUNK)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def splice(
    left: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    right: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    """Copy both ways until either direction ends; then close both.

    Not a half-close: behind a port-forward a dead leg often shows only as an EOF, and a
    connection left half-open toward the apiserver would be reused for the next call and
    fail it. Webhook calls are HTTP over TLS, which never half-closes and waits for an
    answer, so closing at the first EOF loses nothing (buffered bytes are still flushed).
    """
    tasks = [
        asyncio.ensure_future(pump(left[0], right[1])),
        asyncio.ensure_future(pump(right[0], left[1])),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for writer in (left[1], right[1]):
            writer.close()


class Relay:
    """The relay's state: the control connection, and the apiserver's pending connections."""

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        control_port: int = DEFAULT_CONTROL_PORT,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        pending_seconds: float = DEFAULT_PENDING_SECONDS,
        ping_seconds: float = DEFAULT_PING_SECONDS,
        listen_host: str = "",
        control_host: str = "127.0.0.1",
    ) -> None:
        self.port = port
        self.control_port = control_port
        self.idle_seconds = idle_seconds
        self.pending_seconds = pending_seconds
        self.ping_seconds = ping_seconds
        self.listen_host = listen_host  # "": every address of the Pod (its IP)
        self.control_host = control_host
        self._control: asyncio.StreamWriter | None = None
        self._pending: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        self._ids = itertools.count(1)
        # Spliced connections, closed with the control connection they came under.
        self._active: set[asyncio.StreamWriter] = set()
        self._last_client = time.monotonic()
        self.spliced = 0
        self.refused = 0

    async def run(self) -> int:
        """Serve until idle for ``idle_seconds``; the exit status (0: idle exit)."""
        data = await asyncio.start_server(
            self._on_apiserver, self.listen_host or None, self.port, reuse_address=True
        )
        control = await asyncio.start_server(
            self._on_control_port, self.control_host, self.control_port, reuse_address=True
        )
        self.port = data.sockets[0].getsockname()[1]
        self.control_port = control.sockets[0].getsockname()[1]
        log(f"listening on port {self.port}, control on {self.control_host}:{self.control_port}")
        try:
            while True:
                await asyncio.sleep(min(1.0, self.idle_seconds / 4))
                if self._control is not None:
                    self._last_client = time.monotonic()
                elif time.monotonic() - self._last_client > self.idle_seconds:
                    log(f"no client for {self.idle_seconds:.0f} s: exiting")
                    return 0
        finally:
            data.close()
            control.close()

    # --- the apiserver's side -----------------------------------------------------------

    async def _on_apiserver(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        control = self._control
        if control is None:
            self.refused += 1
            writer.close()  # nobody to carry it: fail fast, the guard says Ignore
            return
        _nodelay(writer)
        conn_id = next(self._ids)
        self._pending[conn_id] = (reader, writer)
        try:
            control.write(encode(NEW, conn_id))
            await control.drain()
        except (ConnectionError, OSError):
            pass
        await asyncio.sleep(self.pending_seconds)
        if self._pending.pop(conn_id, None) is not None:
            writer.close()  # the workstation never came for it

    # --- the workstation's side ---------------------------------------------------------

    async def _on_control_port(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=10)
            kind, conn_id = decode_hello(line)
        except (asyncio.TimeoutError, FramingError, ConnectionError, ValueError) as error:
            log(f"dropped a control-port connection: {error}")
            writer.close()
            return
        if kind == CONTROL:
            await self._serve_control(reader, writer)
        else:
            assert conn_id is not None
            await self._serve_data(conn_id, reader, writer)

    async def _serve_control(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        previous, self._control = self._control, writer
        if previous is not None:
            previous.close()
            self._drop_active()
        log("client connected")
        writer.write(encode(READY, self.port))
        pinger = asyncio.ensure_future(self._ping(writer))
        try:
            while True:
                line = await asyncio.wait_for(reader.readline(), timeout=3 * self.ping_seconds)
                if not line:
                    break
                decode(line)  # PONG; anything well-formed keeps the connection alive
        except (asyncio.TimeoutError, FramingError, ConnectionError, OSError, ValueError):
            pass
        finally:
            pinger.cancel()
            writer.close()
            if self._control is writer:
                self._control = None
                self._last_client = time.monotonic()
                self._drop_active()
                log("client gone")

    def _drop_active(self) -> None:
        """The port-forwards died with (or are suspect after) their control connection;
        close the apiserver's connections spliced to them, so it dials afresh instead of
        sending its next call into a dead leg."""
        for writer in list(self._active):
            writer.close()
        self._active.clear()

    async def _ping(self, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await asyncio.sleep(self.ping_seconds)
                writer.write(encode(PING))
                await writer.drain()
        except (ConnectionError, OSError):
            writer.close()

    async def _serve_data(
        self, conn_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        inbound = self._pending.pop(conn_id, None)
        if inbound is None:
            writer.write(encode(GONE))
            writer.close()
            return
        writer.write(encode(OK))
        self.spliced += 1
        self._active.update((inbound[1], writer))
        try:
            await splice(inbound, (reader, writer))
        finally:
            self._active.discard(inbound[1])
            self._active.discard(writer)


def log(message: str) -> None:
    print(f"webhook-dev relay: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="webhook-dev's relay (see the docstring)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--control-port", type=int, default=DEFAULT_CONTROL_PORT)
    parser.add_argument("--idle-seconds", type=float, default=DEFAULT_IDLE_SECONDS)
    parser.add_argument("--pending-seconds", type=float, default=DEFAULT_PENDING_SECONDS)
    parser.add_argument("--ping-seconds", type=float, default=DEFAULT_PING_SECONDS)
    parser.add_argument("--listen-host", default="")
    args = parser.parse_args(argv)
    relay = Relay(
        port=args.port,
        control_port=args.control_port,
        idle_seconds=args.idle_seconds,
        pending_seconds=args.pending_seconds,
        ping_seconds=args.ping_seconds,
        listen_host=args.listen_host,
    )
    try:
        loop = asyncio.new_event_loop()
        return loop.run_until_complete(relay.run())
    except OSError as error:
        log(f"cannot listen: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
