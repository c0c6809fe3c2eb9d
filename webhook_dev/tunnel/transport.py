"""The contract between a session and whatever carries the apiserver's calls to this machine.

A session asks its transport for one thing: *an address the apiserver can dial that
reaches this proxy*. Everything else — journal, certificates, the failurePolicy guard,
the probe, reloads, recording, restore — is the same whichever transport runs, and knows
nothing of it. Three transports fit the contract:

* ``--ssh DEST`` (:class:`webhook_dev.tunnel.ssh.SshTunnel`): a reverse forward on the
  master, bound to its routable address;
* ``--direct`` (:class:`webhook_dev.tunnel.direct.DirectTransport`): the cluster
  reaches this machine, which listens on one address for the cluster's peers only;
* ``--relay`` (:class:`webhook_dev.tunnel.relay.RelayTransport`): a relay Pod, reached
  through the apiserver's port-forward.

The calls come in two steps because the certificate may have to name the address
(``url:`` webhooks are rewritten to it) before the proxy can serve: :meth:`prepare`
learns the address, the session issues the certificate and starts the proxy, then
:meth:`carry` starts carrying connections to it and proves that it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class TransportState(StrEnum):
    CONNECTING = "connecting"
    UP = "up"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(frozen=True)
class DialAddress:
    """Where the apiserver dials during the session: the Endpoints' IP and port."""

    ip: str
    port: int

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


class Transport(Protocol):
    """What a session needs from a transport. Implementations raise ``TunnelError`` or
    ``PreflightError`` (nothing in the cluster has changed yet when they do)."""

    @property
    def state(self) -> TransportState: ...

    @property
    def reconnects(self) -> int: ...

    async def prepare(self) -> str:
        """Get ready and return the IP the apiserver will dial (for the certificate)."""

    async def carry(self, local_port: int) -> DialAddress:
        """Carry connections to ``127.0.0.1:local_port`` from now on, verified; keep doing
        so until :meth:`close`, reconnecting to the *same* address after a failure."""

    def describe(self) -> dict[str, str]:
        """For the journal and ``status``: ``kind`` and what a person needs to see."""

    def health(self) -> dict[str, str]:
        """Renewed with the session's Lease for ``status`` (e.g. ``--direct``'s refused
        connections); may be empty."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class CreatedObject:
    """An object a transport created in the cluster before the journal existed (``--relay``'s
    Pod, whose IP the plan needs): the session journals it, so ``down`` deletes it."""

    kind: str
    api_path: str  # the REST collection, e.g. /api/v1/namespaces/NS/pods
    name: str
    manifest: dict[str, Any]


@runtime_checkable
class CreatesObjects(Protocol):
    """A transport that leaves objects in the cluster for the journal to record.

    Those objects must not be blocked or changed by the webhooks being redirected (which
    may intercept exactly them, with their backend down): before :meth:`prepare` the
    session excludes objects carrying :attr:`shield_label` from those entries, journaled
    like every change (:mod:`webhook_dev.redirect.interception`).
    """

    #: A label key every object it creates carries.
    shield_label: str

    def planned_objects(self) -> list[CreatedObject]:
        """What :meth:`prepare` will create (manifests as they will be sent)."""
        ...

    def created_objects(self) -> list[CreatedObject]: ...
