"""A local port that reaches one Pod's port through the apiserver's port-forward.

Shadow mode calls the production webhook from this machine: its Service's ClusterIP is
not routable from here, but the apiserver forwards to any Pod we may ``create
pods/portforward`` on. :class:`PodForward` listens on 127.0.0.1 and opens one
port-forward (one WebSocket, :func:`~webhook_dev.tunnel.relay.port_forward_dial`) per
connection accepted, spliced to it; TLS stays end to end between our client and the Pod.

The Pod is one Ready backend of the Service, chosen when the session starts
(:func:`ready_backend`); if it goes away, connections fail and the comparison reports
production as unreachable for those calls (never a decision of the cluster's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
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


class PodForward:
    """127.0.0.1:<port> → port-forward → ``pod``:``port``. Start it, read :attr:`port`."""

    def __init__(self, dial: Dial, describe: str) -> None:
        self._dial = dial
        self.describe = describe
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @classmethod
    def to_pod(cls, cluster: Cluster, namespace: str, pod: str, port: int) -> PodForward:
        dial = port_forward_dial(cluster, namespace, pod, port)
        return cls(dial, f"Pod {namespace}/{pod}:{port}")

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            try:
                sock = await asyncio.to_thread(self._dial)
            except Exception as error:  # the call's client reports the dropped connection
                log.warning("port-forward to %s failed: %s", self.describe, error)
                writer.close()
                return
            remote = await asyncio.open_connection(sock=sock)
            await relay_program.splice(remote, (reader, writer))
        finally:
            self._connections.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
