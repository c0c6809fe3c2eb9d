"""When your conversion code cannot answer, the Service's in-cluster backend answers for it.

A conversion webhook has no ``failurePolicy`` and no ``timeoutSeconds``: while ``up``
redirects a CRD's conversion and your code cannot answer, every read, watch and write of
its objects in another version fails, and so does the garbage collector's and namespace
deletion's work on them. So when the Service had Ready Pods before ``up`` (the in-cluster
manager keeps running: ``up`` only takes the Service's selector away), the proxy sends a
ConversionReview your code could not answer — no generation running, a traceback, an
HTTP error, no answer :data:`RESERVE_SECONDS` before the call's deadline — to one of those
Pods, from this machine through the apiserver's Pod port-forward (the way shadow mode
reaches production; :mod:`webhook_dev.tunnel.pod_forward`), verified with the CRD's own
``caBundle`` as the apiserver verifies it, and answers with that conversion. The exchange
keeps your code's error and carries the flag :data:`FLAG_CODE`, so the console, the
inspector and the recording say who converted.

An answer your code gave is never replaced, even a ``Failure``: that is your code's
decision to see. And nothing helps while this machine sleeps or the tunnel is down:
no call reaches the proxy then (docs/operators.md, "When the laptop is away").
"""

from __future__ import annotations

from collections.abc import Mapping

from webhook_dev.reviews.flags import Flag
from webhook_dev.serving.production import ProductionAddress, ProductionClient
from webhook_dev.serving.upstream import UpstreamResponse

FLAG_CODE = "answered-in-cluster"
#: The part of a conversion's deadline kept for the in-cluster backend (at most half).
RESERVE_SECONDS = 5.0


class ConversionFallback:
    """The in-cluster backend of each conversion path (``/convert``); close it."""

    def __init__(self, addresses: Mapping[str, ProductionAddress]) -> None:
        self._clients = {path: ProductionClient(address) for path, address in addresses.items()}

    def covers(self, path: str) -> bool:
        return path in self._clients

    @staticmethod
    def reserve(timeout: float) -> float:
        """Seconds of a call's ``timeout`` your code does not get, so the backend can answer."""
        return min(RESERVE_SECONDS, timeout / 2)

    async def answer(self, path: str, query: str, body: bytes, budget: float) -> UpstreamResponse:
        """The in-cluster backend's answer to the identical request; never raises."""
        return await self._clients[path].send(body, query, budget)

    @staticmethod
    def flag(local: UpstreamResponse) -> Flag:
        why = f"HTTP {local.status}" if local.status else "no answer"
        return Flag(
            FLAG_CODE,
            f"your code could not answer ({why}); the in-cluster backend converted instead",
        )

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
