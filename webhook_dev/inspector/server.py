"""The inspector's web app: a loopback-only aiohttp server behind a Jupyter-style token.

Why the guard is strict: the page shows every object the cluster sends the webhook
(Secrets included, in clear during ``serve``) and can make the code answer on demand, so
any web page the developer visits must not be able to read or drive it.

- It binds 127.0.0.1 only.
- Every request needs the token: once as ``?token=`` (the printed URL), which sets an
  HttpOnly, SameSite=Strict cookie and redirects to a clean URL; afterwards the cookie.
  Tokens are compared in constant time.
- ``Host`` must name loopback, so a DNS-rebinding page (``evil.example`` resolving to
  127.0.0.1) gets 403 even before the token question.
- A POST must come from the page's own origin; responses forbid framing and inline script.

Routes: ``/`` the page, ``/static/*`` its assets, ``/api/exchanges`` the list (a window:
``?q=`` a filter in :mod:`~webhook_dev.recording.query`'s syntax, ``offset``, ``limit``
up to :data:`MAX_LIMIT`, ``order=newest`` or oldest first, the default kept for scripts;
``total`` says how many match), ``/api/facets`` the values the page's selects offer,
``/api/exchanges/{id}`` one exchange's detail (read from its file by offset),
``POST /api/exchanges/{id}/replay``,
``/api/events`` server-sent events (``exchange`` rows and worker ``status``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from webhook_dev.errors import RecordingError, ReviewError, UsageError
from webhook_dev.inspector import views
from webhook_dev.inspector.feed import ExchangeFeed, Listener
from webhook_dev.inspector.store import FeedStore, Store
from webhook_dev.recording import query as filters
from webhook_dev.reviews.exchange import Exchange
from webhook_dev.serving.upstream import Upstream

DEFAULT_PORT = 4041  # ngrok's page is on 4040; one up, so both can run
STATIC_DIR = Path(__file__).with_name("static")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
KEEPALIVE_SECONDS = 15.0
DEFAULT_LIMIT = 1000
MAX_LIMIT = 1000
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

ReplayTarget = Callable[[], Upstream | None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class InspectorServer:
    """Serves ``feed`` on ``http://127.0.0.1:port/``.

    :param port: 0 picks a free port; ``None``: :data:`DEFAULT_PORT`, or any free port when
        that one is taken (a second ``serve`` still gets a page). Read :attr:`url` once started.
    :param replay_target: returns where the replay button sends a request (the stack's
        upstream, i.e. the current code), or ``None`` when there is none.
    :param redaction_key: the recorder's key, so replaying a recorded (redacted) Secret
        compares equal when the code did not change.
    :param source: shown in the header, e.g. ``live`` or the recordings' names.
    :param store: where the list comes from (``inspect``: recordings through their index);
        default: ``feed``'s ring.
    :raises UsageError: from :meth:`start` when the port is taken.
    """

    def __init__(
        self,
        feed: ExchangeFeed,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        replay_target: ReplayTarget | None = None,
        redaction_key: bytes | None = None,
        source: str = "live",
        token: str | None = None,
        store: Store | None = None,
    ) -> None:
        self.feed = feed
        self.store: Store = store if store is not None else FeedStore(feed)
        self.host = host
        self._fallback = port is None
        self.port = DEFAULT_PORT if port is None else port
        self.replay_target = replay_target
        self.redaction_key = redaction_key
        self.source = source
        self.token = token or secrets.token_urlsafe(32)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    @property
    def url(self) -> str:
        """The address to open, token included (print it; it is the key to the page)."""
        return f"http://{self.host}:{self.port}/?token={self.token}"

    @property
    def cookie_name(self) -> str:
        # Cookies ignore ports: one name per port keeps two inspectors from clobbering.
        return f"webhook-dev-inspector-{self.port}"

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._index)
        app.router.add_static("/static/", STATIC_DIR)
        app.router.add_get("/api/exchanges", self._list)
        app.router.add_get("/api/facets", self._facets)
        app.router.add_get("/api/exchanges/{id}", self._detail)
        app.router.add_post("/api/exchanges/{id}/replay", self._replay)
        app.router.add_get("/api/events", self._events)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        try:
            try:
                await web.TCPSite(self._runner, self.host, self.port).start()
            except OSError:
                if not self._fallback:
                    raise
                await web.TCPSite(self._runner, self.host, 0).start()
        except OSError as error:
            await self._runner.cleanup()
            self._runner = None
            raise UsageError(
                f"cannot start the inspector on {self.host}:{self.port}: {error.strerror}",
                hint="pick another --inspector-port, 0 for any free one, or --no-inspector",
            ) from error
        self.port = self._runner.addresses[0][1]  # the real one, when asked for port 0

    async def close(self) -> None:
        self._closing.set()  # ends the event streams, so cleanup does not wait on them
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> InspectorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- the guard -------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if _hostname(request.host) not in LOOPBACK_HOSTS:
            return _forbidden("the inspector answers only to http://127.0.0.1 or localhost")
        supplied = request.query.get("token")
        if supplied is not None and request.method == "GET" and self._is_token(supplied):
            # Trade the URL's token for a cookie and drop it from the address bar.
            query = {k: v for k, v in request.query.items() if k != "token"}
            redirect = web.HTTPFound(request.rel_url.with_query(query))
            redirect.set_cookie(
                self.cookie_name, self.token, httponly=True, samesite="Strict", path="/"
            )
            raise redirect
        if not self._is_token(request.cookies.get(self.cookie_name, "")):
            return _forbidden(
                "open the inspector with the URL webhook-dev printed (it carries the token)"
            )
        origin = request.headers.get("Origin")
        if request.method != "GET" and origin is not None and origin != f"http://{request.host}":
            return _forbidden("cross-origin request refused")
        response = await handler(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def _is_token(self, supplied: str) -> bool:
        return hmac.compare_digest(supplied.encode(), self.token.encode())

    # --- pages and API ---------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def _list(self, request: web.Request) -> web.Response:
        try:
            query = filters.parse(request.query.get("q", ""))
            offset = max(0, int(request.query.get("offset", "0")))
            limit = min(MAX_LIMIT, max(0, int(request.query.get("limit", str(DEFAULT_LIMIT)))))
        except filters.QueryError as error:
            return web.json_response({"error": str(error)}, status=400)
        except ValueError:
            return web.json_response({"error": "offset and limit are numbers"}, status=400)
        newest_first = request.query.get("order") == "newest"
        if newest_first:
            total, rows = await self.store.page(query, offset, limit)
        else:  # oldest first: the window counted from the other end
            total, _ = await self.store.page(query, 0, 0)
            start = max(0, total - offset - limit)
            _, rows = await self.store.page(query, start, max(0, total - offset - start))
            rows.reverse()
        return web.json_response(
            {
                "exchanges": rows,
                "total": total,
                "offset": offset,
                "source": self.source,
                "replay": self._target() is not None,
                **self.feed.describe(),
                "count": await self.store.count(),
            },
            dumps=_dumps,
        )

    async def _facets(self, request: web.Request) -> web.Response:
        return web.json_response(await self.store.facets(), dumps=_dumps)

    async def _exchange(self, exchange_id: str) -> Exchange | None:
        try:
            return await self.store.get(exchange_id)
        except RecordingError as error:
            raise web.HTTPConflict(text=f"cannot read this exchange: {error}") from error

    async def _detail(self, request: web.Request) -> web.Response:
        exchange = await self._exchange(request.match_info["id"])
        if exchange is None:
            raise web.HTTPNotFound(text="no such exchange (the inspector keeps the newest 1,000)")
        return web.json_response(views.detail(exchange), dumps=_dumps)

    async def _replay(self, request: web.Request) -> web.Response:
        exchange = await self._exchange(request.match_info["id"])
        if exchange is None:
            raise web.HTTPNotFound(text="no such exchange")
        target = self._target()
        if target is None:
            return web.json_response(
                {"error": "nothing to replay to: start the inspector with --app APP"}, status=409
            )
        try:
            # Imported here: replay (jsonpatch, difflib) is only needed once a row is replayed,
            # and `inspect` of a recording should be ready as soon as possible.
            from webhook_dev.replay.replayer import render, replay_exchange

            result = await replay_exchange(exchange, target, redaction_key=self.redaction_key)
        except ReviewError as error:
            return web.json_response({"error": f"cannot replay: {error}"}, status=422)
        return web.json_response(
            {
                "verdict": "same" if result.passed else "changed",
                "differences": result.to_json()["differences"],
                "diff": render(result),
                "problems": result.problems,
                "current_status": result.current_status,
                "current_review": result.current_review,
                "generation": target.generation,
            },
            dumps=_dumps,
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        await response.prepare(request)
        with self.feed.listen() as listener:
            try:
                await response.write(_event("status", self.feed.status))
                while not self._closing.is_set():
                    message = await _next_message(listener, self._closing)
                    if message is None:
                        if listener.overflowed.is_set() or self._closing.is_set():
                            break
                        await response.write(b": keep-alive\n\n")  # finds closed tabs
                        continue
                    await response.write(_event(message.kind, message.data))
            except ConnectionResetError:
                pass  # the tab was closed: nothing to tell anyone
        return response

    def _target(self) -> Upstream | None:
        return self.replay_target() if self.replay_target is not None else None


async def _next_message(listener: Listener, closing: asyncio.Event) -> Any:
    """The next message, or ``None`` after a keep-alive interval, overflow or shutdown."""
    getter = asyncio.ensure_future(listener.queue.get())
    stoppers = [
        asyncio.ensure_future(listener.overflowed.wait()),
        asyncio.ensure_future(closing.wait()),
    ]
    try:
        done, _ = await asyncio.wait(
            [getter, *stoppers], timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for task in (getter, *stoppers):
            task.cancel()
    if getter in done:
        return getter.result()
    return None


def _event(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {_dumps(data)}\n\n".encode()


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _hostname(host: str) -> str:
    """``Host`` without its port (``[::1]:4041`` -> ``[::1]``)."""
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if ":" in host else host


def _forbidden(message: str) -> web.Response:
    return web.Response(
        status=403,
        text=f"webhook-dev inspector: {message}\n",
        headers={"Cache-Control": "no-store"},
    )
