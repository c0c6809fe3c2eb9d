"""A local port that reaches one Pod's port through the apiserver's port-forward.

Shadow mode calls the production webhook from this machine: its Service's ClusterIP is
not routable from here, but the apiserver forwards to any Pod we may ``create
pods/portforward`` on. :class:`PodForward` listens on 127.0.0.1 and opens one
port-forward (one WebSocket, :func:`~webhook_dev.tunnel.relay.port_forward_dial`) per
connection accepted, spliced to it; TLS stays end to end between our client and the Pod.

The Pod is one Ready backend of the Service, chosen when the session starts
(:func:`ready_backend`). A shadow session lasts through production's rollouts: when the
port-forward to that Pod cannot be opened (the Pod is gone), a Ready backend is chosen
again from the Service's EndpointSlices and the connection goes there. Calls that meet no
Ready backend at all are reported as production unreachable (never a decision of the
cluster's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Mapping
from typing import Any

from webhook_dev.errors import PreflightError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.tunnel import relay_program
from webhook_dev.tunnel.relay import Dial, port_forward_dial

log = logging.getLogger(__name__)


def ready_backend(cluster: Cluster, service: Mapping[str, Any], port: int) -> tuple[str, str, int]:
    """``(namespace, pod, target port)`` of one Ready Pod behind ``service``'s ``port``.

    :raises PreflightError: the Service has no ready Pod (production cannot answer us).
    """
    metadata = service["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    port_spec = next(
        (p for p in (service.get("spec") or {}).get("ports") or [] if p.get("port") == port),
        None,
    )
    port_name = (port_spec or {}).get("name")
    slices = cluster.list(
        f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
        label_selector=f"kubernetes.io/service-name={name}",
    )
    for endpoint_slice in slices:
        target = next(
            (
                p.get("port")
                for p in endpoint_slice.get("ports") or []
                if p.get("name", "") == (port_name or "")
            ),
            None,
        )
        for endpoint in endpoint_slice.get("endpoints") or []:
            pod = (endpoint.get("targetRef") or {}).get("name")
            ready = (endpoint.get("conditions") or {}).get("ready", True)
            if pod and ready and isinstance(target, int):
                return namespace, str(pod), target
    raise PreflightError(
        f"Service {namespace}/{name} has no ready Pod to compare with: shadow mode calls "
        "the production webhook through one of its Pods",
        hint=f"kubectl get endpointslices -n {namespace} -l kubernetes.io/service-name={name}",
    )


def selected_backend(
    cluster: Cluster, service: Mapping[str, Any], port: int
) -> tuple[str, str, int]:
    """``(namespace, pod, target port)`` of one Ready Pod that ``service``'s selector picks.

    For a Service ``up`` redirects: it takes the selector away, so the EndpointSlice
    controller no longer lists the Pods (:func:`ready_backend` would find none); ``service``
    is the Service as it was before, and the Pods it selected run on.

    :raises PreflightError: no selector, or it picks no Ready Pod serving the port.
    """
    metadata = service["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    spec = service.get("spec") or {}
    selector = spec.get("selector") or {}
    if not selector:
        raise PreflightError(
            f"Service {namespace}/{name} has no selector: no in-cluster Pod backs it",
            hint=f"kubectl get service -n {namespace} {name} -o yaml",
        )
    port_spec: Mapping[str, Any] = next(
        (p for p in spec.get("ports") or [] if p.get("port") == port), {}
    )
    target = port_spec.get("targetPort", port)
    labels = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
    for pod in cluster.list(f"/api/v1/namespaces/{namespace}/pods", label_selector=labels):
        if pod["metadata"].get("deletionTimestamp") or not _ready(pod):
            continue
        number = target if isinstance(target, int) else _named_port(pod, str(target))
        if number is not None:
            return namespace, str(pod["metadata"]["name"]), number
    raise PreflightError(
        f"Service {namespace}/{name} selects no Ready Pod serving port {port}",
        hint=f"kubectl get pods -n {namespace} -l {labels}",
    )


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _named_port(pod: Mapping[str, Any], name: str) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for container_port in container.get("ports") or []:
            if container_port.get("name") == name:
                return int(container_port["containerPort"])
    return None


#: Which backend of a Service to reach: :func:`ready_backend` or :func:`selected_backend`.
Choose = Callable[[Cluster, Mapping[str, Any], int], tuple[str, str, int]]
#: How to reach a backend now: a dial and its description ("Pod NS/NAME:PORT").
Select = Callable[[], tuple[Dial, str]]


class PodForward:
    """127.0.0.1:<port> → port-forward → ``pod``:``port``. Start it, read :attr:`port`.

    With ``select``, a dial that fails chooses the backend again (once per connection),
    and ``say`` tells the developer where production is reached from then on.
    """

    def __init__(
        self,
        dial: Dial,
        describe: str,
        select: Select | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self._dial = dial
        self.describe = describe
        self._select = select
        self._say = say
        self._selecting = asyncio.Lock()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @classmethod
    def to_service(
        cls,
        cluster: Cluster,
        service: Mapping[str, Any],
        port: int,
        say: Callable[[str], None] | None = None,
        choose: Choose = ready_backend,
    ) -> PodForward:
        """To one Ready Pod behind ``service``'s ``port`` (as ``choose`` finds it), chosen
        again when it is gone.

        :raises PreflightError: the Service has no Ready Pod now.
        """

        def select() -> tuple[Dial, str]:
            namespace, pod, target_port = choose(cluster, service, port)
            dial = port_forward_dial(cluster, namespace, pod, target_port)
            return dial, f"Pod {namespace}/{pod}:{target_port}"

        dial, describe = select()
        return cls(dial, describe, select, say)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            try:
                sock = await self._open()
            except Exception as error:  # the call's client reports the dropped connection
                log.warning("port-forward to %s failed: %s", self.describe, error)
                writer.close()
                return
            remote = await asyncio.open_connection(sock=sock)
            await relay_program.splice(remote, (reader, writer))
        finally:
            self._connections.discard(task)

    async def _open(self) -> socket.socket:
        """A socket to the backend; if the dial fails, to a backend chosen again."""
        dial = self._dial
        try:
            return await asyncio.to_thread(dial)
        except Exception as error:
            if self._select is None:
                raise
            failed = error
        async with self._selecting:  # one choice for every connection that failed at once
            if self._dial is dial:
                was = self.describe
                self._dial, self.describe = await asyncio.to_thread(self._select)
                if self.describe != was and self._say is not None:
                    self._say(f"production reached through {self.describe} now ({was}: {failed})")
        return await asyncio.to_thread(self._dial)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
