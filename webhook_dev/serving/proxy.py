"""The HTTPS front door: check each call, pass it upstream, check the answer, publish it.

The proxy refuses what no webhook should have to handle (wrong method, oversized body,
a body that does not decode, not JSON, not an AdmissionReview, a wrongly typed field, no
``request.uid``) with a clear 4xx and keeps serving; it flags answers the apiserver would
reject. Everything it learns goes into one
:class:`~webhook_dev.admission.exchange.Exchange` handed to the hooks: the proxy prints and
records nothing itself.

Durations come from :func:`time.perf_counter_ns`, not ``loop.time()``: uvloop's clock is
libuv's cached millisecond, read once per loop iteration, which made every duration a
whole (and possibly stale) millisecond. Deadlines stay on the loop's clock, which is what
its timers use.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from aiohttp import http_exceptions, web

from webhook_dev.admission import review
from webhook_dev.admission.exchange import Exchange, Hooks, now
from webhook_dev.admission.review import Flag
from webhook_dev.admission.timeouts import DEFAULT_TIMEOUT, parse_go_duration
from webhook_dev.errors import ReviewError
from webhook_dev.serving.http_server import describe
from webhook_dev.serving.upstream import Upstream, UpstreamRequest

MAX_BODY = 8 * 1024 * 1024  # an object and its old version, each up to etcd's 1.5 MiB, and more


def elapsed_ms(since_ns: int) -> float:
    """Milliseconds since a :func:`time.perf_counter_ns` reading."""
    return (time.perf_counter_ns() - since_ns) / 1e6


class Proxy:
    """An aiohttp application answering every path by way of ``upstream``."""

    def __init__(
        self,
        upstream: Upstream,
        hooks: Hooks,
        *,
        max_body: int = MAX_BODY,
        default_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.upstream = upstream
        self.hooks = hooks
        self.max_body = max_body
        self.default_timeout = default_timeout

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started_ns = time.perf_counter_ns()
        exchange = Exchange(id=uuid.uuid4().hex[:16], started=now(), path=request.path_qs)
        try:
            response = await self._answer(request, exchange)
        except Exception as error:  # a bug of ours: still one clear answer and one line
            response = _refuse(exchange, 500, f"webhook-dev failed on this call: {error!r}")
        exchange.http_status = response.status
        exchange.duration_ms = elapsed_ms(started_ns)
        self.hooks.exchange(exchange)
        return response

    async def _answer(self, request: web.Request, exchange: Exchange) -> web.Response:
        loop = asyncio.get_running_loop()
        started = loop.time()
        read_started = time.perf_counter_ns()
        if request.method != "POST":
            return _refuse(
                exchange,
                405,
                f"method {request.method} not allowed: the apiserver POSTs AdmissionReviews",
                headers={"Allow": "POST"},
            )
        if request.content_length is not None and request.content_length > self.max_body:
            return _refuse(exchange, 413, self._too_large(request.content_length))
        timeout = parse_go_duration(request.query.get("timeout")) or self.default_timeout
        try:
            # A body trickling in (slowloris) may take no longer than the call itself.
            async with asyncio.timeout(timeout):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refuse(exchange, 413, self._too_large(None))
        except TimeoutError:
            return _refuse(exchange, 408, f"the request body did not arrive within {timeout:g} s")
        except (http_exceptions.HttpProcessingError, web.RequestPayloadError) as error:
            encoding = request.headers.get("Content-Encoding", "")
            if encoding:
                problem = f"does not decode as its Content-Encoding {encoding!r} says"
            else:
                problem = "is malformed"
            return _refuse(
                exchange,
                400,
                f"the request body {problem} ({describe(error)}); the apiserver sends plain JSON",
            )
        try:
            admission = review.parse_request(body)
        except ReviewError as error:
            return _refuse(exchange, 400, str(error))
        exchange.request_review = admission.review
        exchange.read_ms = elapsed_ms(read_started)

        forwarded = UpstreamRequest(
            path=request.path_qs,
            body=body,
            headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
        )
        answer = await self.upstream.send(forwarded, started + timeout)
        checks_started = time.perf_counter_ns()
        exchange.generation = answer.generation
        exchange.upstream_ms = answer.elapsed_ms
        exchange.wait_ms = answer.wait_ms
        exchange.error = answer.error
        try:
            if answer.status != 200:
                exchange.flags.append(
                    Flag("http-status", f"HTTP {answer.status}: the apiserver fails the call")
                )
                if answer.error and answer.status == 500:
                    last = answer.error.strip().splitlines()[-1] if answer.error.strip() else ""
                    text = f"the webhook raised {last} (traceback in webhook-dev's console)\n"
                    return web.Response(status=500, text=text)
                return web.Response(
                    status=answer.status, body=answer.body, content_type=answer.content_type
                )
            response_review = _json_or_none(answer.body)
            _, flags = review.read_response(
                admission, answer.body if response_review is None else response_review
            )
            exchange.flags.extend(flags)
            exchange.response_review = response_review
            return web.Response(status=200, body=answer.body, content_type=answer.content_type)
        finally:
            exchange.checks_ms = elapsed_ms(checks_started)

    def _too_large(self, size: int | None) -> str:
        actual = f" ({size} bytes)" if size is not None else ""
        return f"request body too large{actual}: the limit is {self.max_body} bytes"


def _refuse(
    exchange: Exchange, status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    exchange.error = message
    return web.Response(status=status, text=f"webhook-dev: {message}\n", headers=headers)


def _json_or_none(body: bytes) -> review.JsonObject | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
