"""A lean HTTP/1.1 hop to our own worker: kept-alive raw connections over its Unix socket.

aiohttp's client (request and response objects, a connector, header multidicts, timers,
tracing hooks) cost the proxy more than the worker's handler; the worker is our own
``app_worker`` running aiohttp's server, so the framing is known and small: one POST with
a ``Content-Length`` body, one answer framed by ``Content-Length`` (or, for an app that
streams, ``chunked`` or the connection's end). Idle connections are kept and reused; one
the worker closed is noticed (EOF already read) and dropped before reuse.

Failures keep the meaning :func:`~webhook_dev.serving.upstreams.forward.forward` gives
them: no connection at all is :class:`ConnectFailed` (the call never reached the code),
the deadline a 504, a dropped connection a 502 — or :class:`BackendGone` when
``disconnected()`` says the worker is going away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from webhook_dev.serving.upstream import BackendGone, UpstreamRequest, UpstreamResponse
from webhook_dev.serving.upstreams.forward import failure

MAX_HEAD = 64 * 1024  # status line and headers of one answer
HeaderError = Callable[[Mapping[str, str], bytes], str | None]
Disconnected = Callable[[], Awaitable[bool]]


class ConnectFailed(Exception):
    """No connection to the socket: the call certainly did not reach the code."""


class _Dropped(Exception):
    """The connection ended or broke before a whole answer came back."""


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes
    reusable: bool

    @property
    def content_type(self) -> str:
        """The media type without parameters, as aiohttp's ``content_type`` gives it."""
        value = self.headers.get("content-type", "application/octet-stream")
        return value.split(";", 1)[0].strip().lower() or "application/octet-stream"


_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class UnixHttpPool:
    """Kept-alive HTTP/1.1 connections to one Unix socket, any number in use at once."""

    def __init__(self, path: str, *, host: str = "worker") -> None:
        self.path = path
        self._host = host
        self._idle: list[_Connection] = []
        self.closed = False

    async def _connection(self) -> _Connection:
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        try:
            return await asyncio.open_unix_connection(self.path, limit=MAX_HEAD)
        except OSError as error:
            raise ConnectFailed(f"cannot connect to {self.path}: {error}") from error

    async def post(self, request: UpstreamRequest) -> RawAnswer:
        """One call; raises :class:`ConnectFailed` or :class:`_Dropped`."""
        if self.closed:
            raise ConnectFailed("the pool is closed")
        reader, writer = await self._connection()
        head = [f"POST {request.path} HTTP/1.1", f"Host: {self._host}"]
        head += [f"{name}: {value}" for name, value in request.headers.items()]
        head.append(f"Content-Length: {len(request.body)}")
        try:
            writer.write(_head_bytes(head) + request.body)
            answer = await _read_answer(reader)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            writer.close()
            raise _Dropped(repr(error)) from error
        except BaseException:  # a timeout or cancellation mid-answer: never reuse it
            writer.close()
            raise
        if answer.reusable and not self.closed:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return answer

    async def close(self) -> None:
        self.closed = True
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()
        for _, writer in idle:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _head_bytes(lines: list[str]) -> bytes:
    """The request head as the client sent it, byte for byte.

    aiohttp's server decodes a head as UTF-8 with ``surrogateescape``, so a byte that is
    not UTF-8 (``Content-Type: application/js\\xd9n``) arrives as a lone surrogate; the
    same codec gives back the very bytes, where ``latin-1`` raised on them (a 500 of
    ours). The worker's aiohttp reads them exactly as the proxy's did.
    """
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


async def _read_answer(reader: asyncio.StreamReader) -> RawAnswer:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise _Dropped(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    reusable = headers.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        length = headers["content-length"]
        if not length.isdigit():
            raise _Dropped(f"bad Content-Length {length[:40]!r}")
        body = await reader.readexactly(int(length))
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:  # framed by the connection's end
        body = await reader.read()
        reusable = False
    return RawAnswer(status, headers, body, reusable)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _Dropped(f"bad chunk size {size_text[:40]!r}") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def forward_unix(
    pool: UnixHttpPool,
    request: UpstreamRequest,
    budget: float,
    *,
    generation: int | None,
    who: str,
    answer_error: HeaderError,
    disconnected: Disconnected,
) -> UpstreamResponse:
    """POST ``request`` over ``pool`` within ``budget`` seconds; failures as
    :func:`~webhook_dev.serving.upstreams.forward.forward` reports them.

    :raises ConnectFailed: no connection (the call did not reach the code).
    :raises BackendGone: the connection dropped and ``disconnected()`` says the worker is
        going away.
    """
    started = time.perf_counter_ns()
    try:
        async with asyncio.timeout(max(budget, 0.1)):
            answer = await pool.post(request)
    except TimeoutError:
        message = f"{who} did not answer before the call's deadline"
        return failure(504, message, generation=generation, since=started)
    except _Dropped as error:
        if await disconnected():
            raise BackendGone() from error
        return failure(
            502, f"{who} dropped the call: {error}", generation=generation, since=started
        )
    return UpstreamResponse(
        status=answer.status,
        body=answer.body,
        content_type=answer.content_type,
        generation=generation,
        error=answer_error(answer.headers, answer.body),
        elapsed_ms=(time.perf_counter_ns() - started) / 1e6,
    )
