"""Calling the production webhook from this machine, for shadow mode's comparison.

Production is reached the way the apiserver reaches it — HTTPS, verified with the entry's
own ``caBundle`` against the name the apiserver verifies (``<service>.<namespace>.svc``, or
the ``url:``'s host) — but from here: a ``url:`` entry at its URL, a Service entry through
a local port that the session carries to one of the Service's Pods (the apiserver's Pod
port-forward). The name still resolves to that port: :class:`PinnedResolver` answers
aiohttp's lookups for the Service's name with the local port, so TLS checks the very
certificate the apiserver checks, and nothing else changes.

Each call is the identical request body, sent once (twice with ``--calibrate``), never
retried: a second try could reach a webhook with side effects twice.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from webhook_dev.serving.upstream import UpstreamRequest, UpstreamResponse
from webhook_dev.serving.upstreams.forward import forward

KEEPALIVE_SECONDS = 2.0


@dataclass(frozen=True)
class ProductionAddress:
    """Where one production entry answers: ``url`` (scheme, host the certificate names,
    port, path) and the CA that signed its certificate (``None``: the system's CAs).

    ``dial``: the local ``(host, port)`` that carries connections for ``url``'s host and
    port (a Pod port-forward); ``None``: dial ``url`` itself.
    """

    url: str
    ca_pem: bytes | None = None
    dial: tuple[str, int] | None = None


class PinnedResolver(AbstractResolver):
    """Resolves pinned ``(host, port)`` pairs to a local address; others as usual."""

    def __init__(self, pins: Mapping[tuple[str, int], tuple[str, int]]) -> None:
        self._pins = dict(pins)
        self._default = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        pinned = self._pins.get((host, port))
        if pinned is None:
            return await self._default.resolve(host, port, family)
        return [
            {
                "hostname": host,
                "host": pinned[0],
                "port": pinned[1],
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        await self._default.close()


class ProductionClient:
    """One production entry, called from this machine. Open it with :meth:`open`."""

    def __init__(self, address: ProductionAddress) -> None:
        self.address = address
        self._session: aiohttp.ClientSession | None = None

    def open(self) -> None:
        parts = urlsplit(self.address.url)
        pins: dict[tuple[str, int], tuple[str, int]] = {}
        if self.address.dial is not None and parts.hostname:
            pins[(parts.hostname, parts.port or 443)] = self.address.dial
        context: Any = True
        if parts.scheme == "https":
            context = ssl.create_default_context()
            if self.address.ca_pem:
                context = ssl.create_default_context(cadata=self.address.ca_pem.decode())
        connector = aiohttp.TCPConnector(
            ssl=context,
            limit=0,
            keepalive_timeout=KEEPALIVE_SECONDS,
            resolver=PinnedResolver(pins),
            use_dns_cache=False,
        )
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, body: bytes, query: str, budget: float) -> UpstreamResponse:
        """POST ``body`` to production (its own path, the call's ``query``); never raises."""
        if self._session is None:
            self.open()
        assert self._session is not None
        url = self.address.url + (f"?{query}" if query else "")
        request = UpstreamRequest(path="", body=body, headers={"Content-Type": "application/json"})
        try:
            return await forward(self._session, url, request, budget, generation=None, who=url)
        except aiohttp.ClientConnectorError as error:
            return UpstreamResponse(0, b"", error=f"cannot reach {url}: {error}")
