"""Forwarding calls to a webhook the user runs at a URL (``--upstream URL``, ``replay --url``).

The apiserver's path (the webhook entry's ``/mutate?timeout=10s``) is kept: it is
appended to the URL's own path, so ``--upstream https://127.0.0.1:9443`` gets
``https://127.0.0.1:9443/mutate?timeout=10s``. Replay's ``--url`` differs in one way: a URL
with a path is the address of every call, and only a bare host gets the recorded path.

A webhook that restarts refuses connections for a moment. A refused connection never
reached the user's code, so it is safe to try again: :class:`UrlBackend` polls until the
port accepts, within the call's deadline, and only then forwards. Everything else (a
dropped connection, a timeout) did or may have reached the code and is reported, not
retried. Replay does not wait: nothing restarts between its calls, so a refused
connection is reported at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from webhook_dev.errors import UsageError
from webhook_dev.serving.upstream import BackendGone, UpstreamRequest, UpstreamResponse
from webhook_dev.serving.upstreams.forward import failure, forward

# Kept back from a call's budget to answer it with a clear error rather than be cut off.
ERROR_RESERVE_SECONDS = 0.3
CONNECT_POLL_SECONDS = 0.02
# Below the shortest idle timeout of common servers (Node: 5 s), so that we never send on
# a keep-alive connection the server is closing at that very moment.
KEEPALIVE_SECONDS = 2.0


@dataclass(frozen=True)
class UpstreamUrl:
    """A parsed ``--upstream`` URL and how to trust it."""

    url: str
    scheme: str
    host: str
    port: int
    base_path: str  # without a trailing slash; prefixed to each call's path
    ca_file: Path | None = None
    insecure: bool = False
    whole_path: bool = False  # a URL with a path is the address of every call (replay)

    @classmethod
    def parse(
        cls,
        url: str,
        *,
        ca_file: Path | None = None,
        insecure: bool = False,
        whole_path: bool = False,
        flag: str = "--upstream",
    ) -> UpstreamUrl:
        """``flag`` names the option in errors.

        :raises UsageError: not an http(s) URL with a host, or TLS options that do not fit.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"{flag} {url!r} is not an http:// or https:// URL",
                hint=f"e.g. {flag} https://127.0.0.1:9443",
            )
        if parts.scheme == "http" and (ca_file is not None or insecure):
            raise UsageError("--upstream-ca and --upstream-insecure are for https:// upstreams")
        if ca_file is not None and insecure:
            raise UsageError("--upstream-ca and --upstream-insecure exclude each other")
        if parts.query or parts.fragment:
            raise UsageError(f"{flag} {url!r}: give no query or fragment; calls bring theirs")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as error:
            raise UsageError(f"{flag} {url!r}: {error}") from error
        return cls(
            url=url,
            scheme=parts.scheme,
            host=parts.hostname,
            port=port,
            base_path=parts.path.rstrip("/"),
            ca_file=ca_file,
            insecure=insecure,
            whole_path=whole_path,
        )

    def target(self, path: str) -> str:
        """Where a call to ``path`` (path and query) goes."""
        if self.whole_path and self.base_path:
            return self.url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.base_path}{path}"

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What aiohttp verifies the upstream with: the system's CAs, ``ca_file``'s, or nothing.

        :raises UsageError: ``ca_file`` cannot be read as PEM certificates.
        """
        if self.scheme == "http":
            return True  # unused for http
        if self.insecure:
            return False
        context = ssl.create_default_context()
        if self.ca_file is not None:
            try:
                context.load_verify_locations(self.ca_file)
            except (OSError, ssl.SSLError) as error:
                raise UsageError(f"cannot load --upstream-ca {self.ca_file}: {error}") from error
        return context

    async def accepts_connections(self) -> bool:
        """One TCP connect to the upstream's port: does something listen?"""
        try:
            _, writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True


class UrlBackend:
    """Sends calls to one :class:`UpstreamUrl`; a generation of a ``--run`` command, or alone.

    ``still_there()`` says whether waiting for a refused port can help (the process that
    should open it is alive); with none, we wait until the call's deadline.
    ``wait_for_port=False`` answers a refused connection at once with status 0 (no HTTP
    answer) and an error saying so.
    """

    def __init__(
        self, upstream: UpstreamUrl, generation: int = 0, *, wait_for_port: bool = True
    ) -> None:
        self.upstream = upstream
        self.generation = generation
        self.wait_for_port = wait_for_port
        self.pid: int | None = None
        self.startup_ms = 0.0
        self._session: aiohttp.ClientSession | None = None

    @property
    def alive(self) -> bool:
        return self._session is not None and not self._session.closed

    def open(self) -> None:
        connector = aiohttp.TCPConnector(
            ssl=self.upstream.ssl_context(), limit=0, keepalive_timeout=KEEPALIVE_SECONDS
        )
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def still_there(self) -> bool:
        return True

    async def send(self, request: UpstreamRequest, budget: float) -> UpstreamResponse:
        """Forward; wait (within ``budget``) while the port refuses connections.

        :raises BackendGone: refused, and the process that should listen has exited.
        """
        session = self._session
        if session is None or session.closed:
            raise BackendGone()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        started = time.perf_counter_ns()
        url = self.upstream.target(request.path)
        generation = self.generation or None
        while True:
            try:
                return await forward(
                    session,
                    url,
                    request,
                    deadline - loop.time(),
                    generation=generation,
                    who=url,
                    answer_error=lambda response, body: _unexpected_status(url, response, body),
                )
            except aiohttp.ClientConnectorError as error:
                if isinstance(error, aiohttp.ClientConnectorCertificateError | ssl.SSLError):
                    message = f"TLS with {url} failed: {error}"
                    return failure(502, message, generation=generation, since=started)
                if not self.wait_for_port:
                    return UpstreamResponse(0, b"", error=f"cannot reach {url}: {error!r}")
                if not self.still_there():
                    raise BackendGone() from error
                if not await self._wait_until_accepting(deadline - ERROR_RESERVE_SECONDS):
                    message = (
                        f"nothing accepted connections at {self.upstream.url} before the "
                        f"call's deadline ({error.os_error.strerror or error})"
                    )
                    return failure(503, message, generation=generation, since=started)

    async def _wait_until_accepting(self, until: float) -> bool:
        loop = asyncio.get_running_loop()
        while loop.time() < until and self.still_there():
            if await self.upstream.accepts_connections():
                return True
            await asyncio.sleep(CONNECT_POLL_SECONDS)
        return False

    async def stop(self) -> None:
        await self.close()


class UrlUpstream:
    """Upstream: a webhook the user starts and restarts themselves (``--upstream`` alone).

    There are no generations to switch between; a restart of the user's server shows up as
    refused connections, and calls wait for the port within their deadline (unless
    ``wait_for_port=False``).
    """

    def __init__(self, upstream: UpstreamUrl, *, wait_for_port: bool = True) -> None:
        self.upstream = upstream
        self._backend = UrlBackend(upstream, wait_for_port=wait_for_port)

    @classmethod
    def for_replay(cls, url: str, *, ca_file: Path | None = None) -> UrlUpstream:
        """Replay's ``--url``: every call to ``url`` if it has a path, else to the recorded
        path; HTTPS verified with the system's CAs and ``ca_file``; a refused connection is
        reported at once.

        :raises UsageError: not an http(s) URL.
        """
        https = urlsplit(url).scheme == "https"
        target = UpstreamUrl.parse(
            url, ca_file=ca_file if https else None, whole_path=True, flag="--url"
        )
        return cls(target, wait_for_port=False)

    @property
    def generation(self) -> int | None:
        return None

    async def start(self) -> None:
        self._backend.open()

    async def close(self) -> None:
        await self._backend.close()

    async def send(self, request: UpstreamRequest, deadline: float) -> UpstreamResponse:
        budget = max(deadline - asyncio.get_running_loop().time(), 0.5)
        return await self._backend.send(request, budget)

    async def reload(self, reason: str) -> None:
        return None

    def request_reload(self, reason: str) -> None:
        return None


def _unexpected_status(url: str, response: aiohttp.ClientResponse, body: bytes) -> str | None:
    """An answer other than 200 or 500, explained; a 500 is passed through as the user's
    server wrote it (the proxy would read ``error`` as a Python traceback): its log says why.
    """
    if response.status in (200, 500):
        return None
    return f"{url} answered HTTP {response.status}: {_excerpt(body)}"


def _excerpt(body: bytes, limit: int = 300) -> str:
    text = body.decode(errors="replace").strip()
    return text if len(text) <= limit else text[:limit] + "..."
