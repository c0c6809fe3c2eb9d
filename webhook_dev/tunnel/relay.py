"""The ``--relay`` transport: a relay Pod the apiserver can reach, and the apiserver's
port-forward from here to it, for managed clusters (EKS, GKE, AKS) with no SSH to the
control plane and no route from it to a laptop.

:meth:`RelayTransport.prepare` creates the relay — a ConfigMap holding
:mod:`~webhook_dev.tunnel.relay_program` and a Pod running it, both labelled as ours — in
the webhook's namespace and waits for the Pod's IP: the apiserver will dial
``<pod-ip>:<relay-port>``. The objects are made *before* the journal exists, because the
plan needs the Pod's IP; the session then records them in the plan as already-created
objects (:meth:`RelayTransport.created_objects`), so from the journal on ``down`` deletes
them with everything else. A ``kill -9`` in the seconds between their creation and the
journal leaves a relay no journal names: it exits by itself after ``idle_seconds``
without a client, and ``down`` finds and removes leftover relays by their label
(:func:`webhook_dev.redirect.restore.remove_stray_relays`).

:meth:`RelayTransport.carry` opens the control connection (one port-forward), and keeps it:
for each ``NEW <id>`` it opens one more port-forward for that connection and splices it to
the TLS proxy on 127.0.0.1. One WebSocket per apiserver connection is the simplest design
that is correct under concurrency (no multiplexing of our own to get wrong, flow control
per connection for free); the apiserver keeps its connections to a webhook alive, so the
cost is paid once per connection, not per call. A dropped control connection (apiserver
restart, idle timeout of a load balancer) reconnects with backoff to the *same* Pod, whose
IP — the Endpoints — does not change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from webhook_dev.errors import ClusterError, PreflightError, TunnelError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.tunnel import relay_manifests, relay_program
from webhook_dev.tunnel.relay_manifests import RelaySpec
from webhook_dev.tunnel.transport import CreatedObject, DialAddress, TransportState

log = logging.getLogger(__name__)

POD_READY_TIMEOUT = 120.0
HANDSHAKE_TIMEOUT = 10.0
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 10.0
# Waiting reasons that will not resolve by themselves: fail at once, saying why.
_STUCK = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}

#: Opens one connection to the relay's control port (blocking; run in a thread).
Dial = Callable[[], socket.socket]


def program_text() -> str:
    """The relay program, as shipped in the ConfigMap: this package's own file."""
    return Path(relay_program.__file__).read_text(encoding="utf-8")


def new_relay_id() -> str:
    return uuid.uuid4().hex[:10]


def port_forward_dial(cluster: Cluster, namespace: str, pod: str, port: int) -> Dial:
    """A :data:`Dial` through the apiserver's port-forward (the client's WebSocket).

    It calls the client's ``ws_client.portforward_call`` itself rather than
    ``kubernetes.stream.portforward``: that one swaps ``call_api`` on the shared
    ``ApiClient`` for the duration of the call, which is not safe while other threads
    (concurrent dials, the session's heartbeat) use the same client.
    """
    from kubernetes.stream import ws_client

    configuration = cluster.api_client.configuration
    url = f"{configuration.host}/api/v1/namespaces/{namespace}/pods/{pod}/portforward?ports={port}"

    def dial() -> socket.socket:
        headers = {  # a bearer token (refreshed by exec plugins); client certs go in ssl
            str(setting["key"]).lower(): setting["value"]
            for setting in configuration.auth_settings().values()
            if setting.get("in") == "header" and setting.get("value")
        }
        try:
            forward = ws_client.portforward_call(configuration, "GET", url, headers=headers)
        except Exception as error:  # ApiException(status=0) wraps the handshake's failure
            found = re.search(r"Handshake status (\d+[^-{]*)", str(error))
            reason = found.group(1).strip() if found else str(error).strip()
            raise TunnelError(
                f"cannot port-forward to Pod {namespace}/{pod}: {reason}",
                hint="you need create and get on pods/portforward in "
                f"{namespace} (`webhook-dev doctor --relay` checks)",
            ) from error
        # The client's end of its socketpair; a thread pumps it over the WebSocket.
        sock: socket.socket = forward.socket(port)._socket
        sock.setblocking(True)
        return sock

    return dial


def _read_line(sock: socket.socket, deadline: float) -> bytes:
    """One line, byte by byte: whatever follows it is the spliced stream, not ours."""
    line = b""
    while not line.endswith(b"\n"):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError("the relay closed the connection")
        line += byte
        if len(line) > relay_program.MAX_LINE:
            raise relay_program.FramingError("line too long")
    sock.settimeout(None)
    return line


def handshake(dial: Dial, hello: bytes) -> tuple[socket.socket, str, list[str]]:
    """Dial, say ``hello``, read the answer: the socket, the verb and its arguments."""
    sock = dial()
    try:
        sock.sendall(hello)
        verb, args = relay_program.decode(_read_line(sock, time.monotonic() + HANDSHAKE_TIMEOUT))
    except (OSError, ConnectionError, relay_program.FramingError):
        sock.close()
        raise
    return sock, verb, args


class RelayTransport:
    """The ``--relay`` transport (see :class:`~webhook_dev.tunnel.transport.Transport`).

    :param dial: overrides the port-forward (unit tests dial a local relay instead).
    """

    def __init__(
        self,
        cluster: Cluster | None,
        spec: RelaySpec,
        on_state: Callable[[TransportState, str], None] | None = None,
        dial: Dial | None = None,
        pod_ip: str | None = None,
    ) -> None:
        self.cluster = cluster
        self.spec = spec
        self.state = TransportState.CONNECTING
        self.reconnects = 0
        self.carried = 0
        self.pod_ip = pod_ip
        self._dial = dial
        self._on_state = on_state or (lambda state, detail: None)
        self._created: list[CreatedObject] = []
        self._control_task: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._closed = False

    # --- the contract ---------------------------------------------------------------------

    async def prepare(self) -> str:
        """Create the relay and wait for its IP; nothing else in the cluster changes.

        :raises PreflightError: the Pod cannot be created or does not start (what was
            created is removed again).
        """
        if self.pod_ip is None:
            try:
                self.pod_ip = await asyncio.to_thread(self._create_and_wait)
            except BaseException:
                await asyncio.to_thread(self._delete_objects)
                raise
        return self.pod_ip

    async def carry(self, local_port: int) -> DialAddress:
        """Connect to the relay (retrying while its program starts) and carry its
        connections to 127.0.0.1:local_port until :meth:`close`."""
        ip = await self.prepare()
        if self._dial is None:
            assert self.cluster is not None
            self._dial = port_forward_dial(
                self.cluster, self.spec.namespace, self.spec.name, self.spec.control_port
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                control = await self._open_control()
                break
            except (OSError, TunnelError, relay_program.FramingError) as error:
                if time.monotonic() > deadline:
                    raise TunnelError(
                        f"the relay {self.spec.namespace}/{self.spec.name} does not answer "
                        f"on its control port: {error}",
                        hint=f"see its log: kubectl logs -n {self.spec.namespace} {self.spec.name}",
                    ) from error
                await asyncio.sleep(0.5)
        self._control_task = asyncio.get_running_loop().create_task(
            self._keep_control(control, local_port)
        )
        return DialAddress(ip, self.spec.port)

    def describe(self) -> dict[str, str]:
        return {
            "kind": "relay",
            "master": self.pod_ip or "",  # the Endpoints' IP, as for ssh
            "port": str(self.spec.port),
            "pod": f"{self.spec.namespace}/{self.spec.name}",
            "image": self.spec.image,
            "host-network": str(self.spec.host_network).lower(),
        }

    def health(self) -> dict[str, str]:
        return {"relay-connections": str(self.carried), "relay-reconnects": str(self.reconnects)}

    shield_label = relay_manifests.RELAY_LABEL

    def planned_objects(self) -> list[CreatedObject]:
        """The ConfigMap and Pod :meth:`prepare` creates, for the session's shield."""
        spec = self.spec
        return [
            CreatedObject(
                "ConfigMap",
                f"{spec.core}/configmaps",
                spec.name,
                relay_manifests.config_map(spec, ""),
            ),
            CreatedObject("Pod", f"{spec.core}/pods", spec.name, relay_manifests.pod(spec)),
        ]

    def created_objects(self) -> list[CreatedObject]:
        """What :meth:`prepare` created, for the session's journal."""
        return list(self._created)

    async def close(self) -> None:
        """Stop carrying and remove the relay (idempotent: ``down`` may have already)."""
        self._closed = True
        if self._control_task is not None:
            self._control_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._control_task
        for task in list(self._connections):
            task.cancel()
        if self._created:
            await asyncio.to_thread(self._delete_objects)
        self._set_state(TransportState.CLOSED, "closed")

    # --- the relay's objects --------------------------------------------------------------

    def _create_and_wait(self) -> str:
        cluster = self.cluster
        assert cluster is not None
        spec = self.spec
        manifest = relay_manifests.config_map(spec, program_text())
        try:
            stored = cluster.create(f"{spec.core}/configmaps", manifest)
            self._created.append(
                CreatedObject("ConfigMap", f"{spec.core}/configmaps", spec.name, manifest)
            )
            pod = relay_manifests.pod(spec, stored["metadata"].get("uid"))
            cluster.create(f"{spec.core}/pods", pod)
            self._created.append(CreatedObject("Pod", f"{spec.core}/pods", spec.name, pod))
        except ClusterError as error:
            raise PreflightError(
                f"cannot create the relay in namespace {spec.namespace}: {error.message}",
                hint=error.hint or "a policy may refuse it: see docs/relay.md",
            ) from error
        self._set_state(TransportState.CONNECTING, f"relay Pod {spec.namespace}/{spec.name}")
        return self._wait_for_ip(cluster)

    def _wait_for_ip(self, cluster: Cluster) -> str:
        spec = self.spec
        deadline = time.monotonic() + POD_READY_TIMEOUT
        where = f"relay Pod {spec.namespace}/{spec.name}"
        while time.monotonic() < deadline:
            pod = cluster.get_or_none(f"{spec.core}/pods/{spec.name}")
            if pod is None:
                raise PreflightError(f"the {where} was deleted while starting")
            status = pod.get("status") or {}
            phase = status.get("phase")
            for container in status.get("containerStatuses") or []:
                waiting = (container.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in _STUCK:
                    raise PreflightError(
                        f"the {where} cannot start: {waiting['reason']}: "
                        f"{waiting.get('message', '')}".rstrip(": "),
                        hint="pass --relay-image with an image your cluster can pull that "
                        "has python3",
                    )
            if phase in ("Failed", "Succeeded"):
                raise PreflightError(
                    f"the {where} ended ({phase}) before it served",
                    hint=f"see kubectl logs -n {spec.namespace} {spec.name}",
                )
            if phase == "Running" and status.get("podIP"):
                return str(status["podIP"])
            time.sleep(0.25)
        raise PreflightError(
            f"the {where} got no IP within {POD_READY_TIMEOUT:.0f} s",
            hint=f"kubectl describe pod -n {spec.namespace} {spec.name}",
        )

    def _delete_objects(self) -> None:
        if self.cluster is None:
            return
        for created in reversed(self._created):
            with contextlib.suppress(ClusterError):
                # At once: no webhook may hold up a Terminating relay (docs/relay.md).
                self.cluster.delete(f"{created.api_path}/{created.name}", grace_period=0)

    # --- carrying -------------------------------------------------------------------------

    async def _open_control(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        assert self._dial is not None
        hello = relay_program.encode(relay_program.MAGIC, relay_program.CONTROL)
        sock, verb, _ = await asyncio.to_thread(handshake, self._dial, hello)
        if verb != relay_program.READY:
            sock.close()
            raise TunnelError(f"the relay answered {verb!r} to our hello")
        reader, writer = await asyncio.open_connection(sock=sock)
        self._set_state(
            TransportState.UP,
            f"{self.pod_ip}:{self.spec.port} (Pod {self.spec.namespace}/{self.spec.name}) "
            "→ port-forward → here",
        )
        return reader, writer

    async def _keep_control(
        self, control: tuple[asyncio.StreamReader, asyncio.StreamWriter], local_port: int
    ) -> None:
        backoff = BACKOFF_FIRST
        while not self._closed:
            await self._serve_control(*control, local_port)
            if self._closed:
                return
            self._set_state(TransportState.RECONNECTING, "port-forward to the relay dropped")
            while not self._closed:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                try:
                    control = await self._open_control()
                    self.reconnects += 1
                    backoff = BACKOFF_FIRST
                    break
                except (OSError, TunnelError, relay_program.FramingError) as error:
                    log.info("relay reconnect failed: %s", error)

    async def _serve_control(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, local_port: int
    ) -> None:
        silence = 3 * relay_program.DEFAULT_PING_SECONDS
        try:
            while True:
                line = await asyncio.wait_for(reader.readline(), silence)
                if not line:
                    return
                verb, args = relay_program.decode(line)
                if verb == relay_program.NEW and args and args[0].isdigit():
                    task = asyncio.get_running_loop().create_task(
                        self._carry_one(int(args[0]), local_port)
                    )
                    self._connections.add(task)
                    task.add_done_callback(self._connections.discard)
                elif verb == relay_program.PING:
                    writer.write(relay_program.encode(relay_program.PONG))
        except (TimeoutError, OSError, ConnectionError, relay_program.FramingError) as error:
            log.info("relay control connection ended: %s", error)
        finally:
            writer.close()

    async def _carry_one(self, conn_id: int, local_port: int) -> None:
        """One apiserver connection: its own port-forward, spliced to the local proxy."""
        assert self._dial is not None
        hello = relay_program.encode(relay_program.MAGIC, relay_program.DATA, conn_id)
        remote_side, local_side = await asyncio.gather(
            asyncio.to_thread(handshake, self._dial, hello),
            asyncio.open_connection("127.0.0.1", local_port),
            return_exceptions=True,
        )
        if isinstance(remote_side, BaseException) or isinstance(local_side, BaseException):
            log.warning("could not carry connection %d: %s", conn_id, remote_side or local_side)
            if not isinstance(remote_side, BaseException):
                remote_side[0].close()
            if not isinstance(local_side, BaseException):
                local_side[1].close()
            return
        sock, verb, _ = remote_side
        local_reader, local_writer = local_side
        if verb != relay_program.OK:  # GONE: the apiserver gave up on it meanwhile
            sock.close()
            local_writer.close()
            return
        self.carried += 1
        remote = await asyncio.open_connection(sock=sock)
        await relay_program.splice(remote, (local_reader, local_writer))

    def _set_state(self, state: TransportState, detail: str) -> None:
        self.state = state
        log.info("relay %s: %s", state, detail)
        self._on_state(state, detail)
