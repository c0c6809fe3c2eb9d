"""How the proxy's aiohttp server treats connections and malformed messages.

* Idle connections are closed after :data:`KEEPALIVE_TIMEOUT` (aiohttp's default is an
  hour): longer than the 90 s the apiserver's client keeps an idle connection, so the
  apiserver always closes first and never sends a call on a connection we are closing —
  but bounded, so idle TLS connections and a slowloris sending headers a byte at a time
  are dropped. A TLS handshake gets :data:`HANDSHAKE_TIMEOUT`; a body, the call's timeout
  (in the proxy).
* aiohttp logs a malformed HTTP message (bad request line, bad chunking, a header too
  long, a body that does not decode) with a traceback that can quote the request's
  bytes. :func:`protocol_logger` turns each into one
  :class:`~webhook_dev.reviews.exchange.BadMessage` event instead (the console prints
  one line), naming the problem but quoting nothing the client sent.
"""

from __future__ import annotations

import asyncio
import logging
import re

from aiohttp import web

from webhook_dev.reviews.exchange import BadMessage, Hooks

KEEPALIVE_TIMEOUT = 120.0
HANDSHAKE_TIMEOUT = 10.0
_QUOTED = re.compile(r"""(:\s*)?\s*b?['"].*""", re.DOTALL)


class TimedSockSite(web.SockSite):
    """A :class:`aiohttp.web.SockSite` whose TLS handshakes time out after
    :data:`HANDSHAKE_TIMEOUT` seconds (asyncio's and uvloop's default is 60)."""

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self._server = await loop.create_server(
            server,
            sock=self._sock,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT if self._ssl_context else None,
        )


def describe(error: BaseException | None) -> str:
    """What was wrong with a message, without the bytes aiohttp quotes from it."""
    if error is None:
        return "malformed HTTP message"
    text = str(getattr(error, "message", "") or error).strip()
    text = text.removeprefix("400, message:").strip()
    first = _QUOTED.sub("", text.splitlines()[0] if text else "").strip().rstrip(":.")
    cause = error.__cause__ or error.__context__
    while cause is not None and not first:
        first = str(cause).splitlines()[0] if str(cause) else ""
        cause = cause.__cause__
    return f"{type(error).__name__}: {first[:200]}" if first else type(error).__name__


class _ToEvents(logging.Handler):
    def __init__(self, hooks: Hooks) -> None:
        super().__init__(logging.DEBUG)
        self.hooks = hooks

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if record.levelno < logging.WARNING:
            return  # aiohttp's debug chatter (client went away, ...)
        if isinstance(error, web.RequestPayloadError):
            return  # the proxy answered 400 and reported it as an exchange already
        peer = ""
        match = re.search(r"from (\S+)", record.getMessage())
        if match:
            peer = match.group(1)
        self.hooks.event(BadMessage(peer, describe(error) if error else record.getMessage()))


def protocol_logger(hooks: Hooks, name: str = "webhook_dev.serving.http") -> logging.Logger:
    """A logger for aiohttp's server that publishes one event per problem, no traceback."""
    logger = logging.getLogger(f"{name}.{id(hooks)}")
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    logger.handlers = [_ToEvents(hooks)]
    return logger
