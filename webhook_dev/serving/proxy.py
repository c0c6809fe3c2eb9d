"""The HTTPS front door: check each call, pass it upstream, answer, then check and publish.

Every review the apiserver sends a webhook comes through here — AdmissionReviews and
ConversionReviews alike (an operator serves both from one Service); the door reads either
with :func:`webhook_dev.reviews.kinds.parse_request`, and the answer is checked as the
apiserver checks that kind's answer.

Answer first, analyse after: on the request's path only what the answer needs (read, the
door's validation, forward, write the answer); the flags, the decoded answer and the
subscribers (console, recorder, inspector) run after the answer is written, while the
next call waits for its worker.

The proxy refuses what no webhook should have to handle (wrong method, oversized body,
a body that does not decode, not JSON, not an AdmissionReview or ConversionReview, a
wrongly typed field, no ``request.uid``) with a clear 4xx and keeps serving; it flags
answers the apiserver would reject. Under ``up``, a conversion the upstream cannot answer
is answered by the Service's in-cluster Pod where one runs (:mod:`.fallback`), flagged.
Everything it learns goes into one
:class:`~webhook_dev.reviews.exchange.Exchange` handed to the hooks: the proxy prints and
records nothing itself.

Durations come from :func:`time.perf_counter_ns`, not ``loop.time()``: uvloop's clock is
libuv's cached millisecond, read once per loop iteration, which made every duration a
whole (and possibly stale) millisecond. Deadlines stay on the loop's clock, which is what
its timers use.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from dataclasses import dataclass

from aiohttp import http_exceptions, web

from webhook_dev.errors import ReviewError
from webhook_dev.reviews import fast_json, kinds
from webhook_dev.reviews.exchange import CLIENT_CLOSED, Exchange, Hooks, now
from webhook_dev.reviews.flags import Flag
from webhook_dev.reviews.timeouts import DEFAULT_TIMEOUT, parse_go_duration
from webhook_dev.serving.fallback import ConversionFallback
from webhook_dev.serving.http_server import describe
from webhook_dev.serving.shadow import Shadower
from webhook_dev.serving.upstream import Upstream, UpstreamRequest, UpstreamResponse

MAX_BODY = 8 * 1024 * 1024  # an object and its old version, each up to etcd's 1.5 MiB, and more
# Longest an answered exchange waits for its analysis when no other call comes to overlap
# it with: long enough for the apiserver's next call at concurrency 1, short for a person.
IDLE_FLUSH_SECONDS = 0.002


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
        shadow: Shadower | None = None,
    ) -> None:
        self.upstream = upstream
        self.hooks = hooks
        self.shadow = shadow  # up --shadow: the copy entries' route (serving/shadow.py)
        # up: the in-cluster backend answers a conversion our upstream cannot (fallback.py)
        self.fallback: ConversionFallback | None = None
        self.max_body = max_body
        self.default_timeout = default_timeout
        self._pending: deque[tuple[Exchange, _Outcome | None]] = deque()
        self._flush_timer: asyncio.TimerHandle | None = None

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started_ns = time.perf_counter_ns()
        exchange = Exchange(id=uuid.uuid4().hex[:16], started=now(), path=request.path_qs)
        outcome: _Outcome | None = None
        try:
            response, outcome = await self._answer(request, exchange)
        except ConnectionError:  # the client left mid-body (upstream hops catch their own)
            response = _refuse(exchange, CLIENT_CLOSED, _client_closed(request))
        except Exception as error:  # a bug of ours: still one clear answer and one line
            response = _refuse(exchange, 500, f"webhook-dev failed on this call: {error!r}")
        exchange.duration_ms = elapsed_ms(started_ns)
        if exchange.shadow is not None:
            return response  # the shadower publishes it once the comparison is made
        exchange.http_status = response.status
        self._after_answer(exchange, outcome)
        return response

    def _after_answer(self, exchange: Exchange, outcome: _Outcome | None) -> None:
        """Queue the exchange's analysis and publication for after the answer is written.

        aiohttp writes the response in the same step of this task, so nothing queued here
        can delay it: the flags, decoding, redaction and the recording's write run later,
        on complete data. *When* matters too: run at once, they would hold up the next
        call, which the apiserver sends as soon as it has this answer (at concurrency 1,
        every call). So they run when a call starts waiting for its upstream (the proxy
        has nothing else to do while the worker works, on the other core), or after
        :data:`IDLE_FLUSH_SECONDS` without one. :meth:`flush` (called before the recorder
        closes) publishes whatever is still queued.
        """
        self._pending.append((exchange, outcome))
        if self._flush_timer is None:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(IDLE_FLUSH_SECONDS, self.flush)

    def _flush_while_waiting(self) -> None:
        """Called as a call starts waiting for its upstream: analyse what is queued then."""
        if self._pending:
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Analyse and publish every exchange answered so far (in order)."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        pending = self._pending
        while pending:
            exchange, outcome = pending.popleft()
            try:
                if outcome is not None:
                    _analyse(exchange, outcome)
            except Exception as error:  # a bug of ours: publish the exchange regardless
                exchange.error = f"webhook-dev failed checking this answer: {error!r}"
            self.hooks.exchange(exchange)

    async def _answer(
        self, request: web.Request, exchange: Exchange
    ) -> tuple[web.Response, _Outcome | None]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        read_started = time.perf_counter_ns()
        if request.method != "POST":
            return _refused(
                exchange,
                405,
                f"method {request.method} not allowed: the apiserver POSTs reviews "
                "(AdmissionReview, ConversionReview)",
                headers={"Allow": "POST"},
            )
        if request.content_length is not None and request.content_length > self.max_body:
            return _refused(exchange, 413, self._too_large(request.content_length))
        timeout = parse_go_duration(request.query.get("timeout")) or self.default_timeout
        try:
            # A body trickling in (slowloris) may take no longer than the call itself.
            async with asyncio.timeout(timeout):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refused(exchange, 413, self._too_large(None))
        except TimeoutError:
            return _refused(exchange, 408, f"the request body did not arrive within {timeout:g} s")
        except (http_exceptions.HttpProcessingError, web.RequestPayloadError) as error:
            encoding = request.headers.get("Content-Encoding", "")
            if encoding:
                problem = f"does not decode as its Content-Encoding {encoding!r} says"
            else:
                problem = "is malformed"
            return _refused(
                exchange,
                400,
                f"the request body {problem} ({describe(error)}); the apiserver sends plain JSON",
            )
        try:
            parsed = kinds.parse_request(body)
        except ReviewError as error:
            return _refused(exchange, 400, str(error))
        exchange.request_review = parsed.review
        exchange.read_ms = elapsed_ms(read_started)
        if self.shadow is not None:
            target = self.shadow.target_of(request.path)
            if target is not None:  # a copy entry: allowed at once, compared off this path
                return self.shadow.answer_at_once(exchange, parsed, body, target), None

        forwarded = UpstreamRequest(
            path=request.path_qs,
            body=body,
            headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
        )
        fallback = self.fallback
        if fallback is not None and not (
            kinds.of_request(parsed) is kinds.CONVERSION and fallback.covers(request.path)
        ):
            fallback = None
        deadline = started + timeout
        reserve = fallback.reserve(timeout) if fallback is not None else 0.0
        self._flush_while_waiting()  # runs once this call has been sent and waits
        answer = await self.upstream.send(forwarded, deadline - reserve)
        exchange.generation = answer.generation
        exchange.upstream_ms = answer.elapsed_ms
        exchange.wait_ms = answer.wait_ms
        exchange.error = answer.error
        if fallback is not None and answer.status != 200:
            answer = await _in_cluster(fallback, request, body, answer, exchange, deadline)
        outcome = _Outcome(parsed, answer)
        if answer.status == 200:
            response = web.Response(status=200, body=answer.body, content_type=answer.content_type)
        elif answer.error and answer.status == 500:
            last = answer.error.strip().splitlines()[-1] if answer.error.strip() else ""
            text = f"the webhook raised {last} (traceback in webhook-dev's console)\n"
            response = web.Response(status=500, text=text)
        else:
            response = web.Response(
                status=answer.status, body=answer.body, content_type=answer.content_type
            )
        return response, outcome

    def _too_large(self, size: int | None) -> str:
        actual = f" ({size} bytes)" if size is not None else ""
        return f"request body too large{actual}: the limit is {self.max_body} bytes"


@dataclass(frozen=True)
class _Outcome:
    """What the analysis after the answer needs: the parsed request and what came back."""

    request: kinds.Request
    answer: UpstreamResponse


async def _in_cluster(
    fallback: ConversionFallback,
    request: web.Request,
    body: bytes,
    local: UpstreamResponse,
    exchange: Exchange,
    deadline: float,
) -> UpstreamResponse:
    """The in-cluster backend's conversion where the upstream gave none (flagged, with
    the upstream's error kept); the upstream's failure if the backend fails too."""
    budget = deadline - asyncio.get_running_loop().time()
    backup = await fallback.answer(request.path, request.query_string, body, budget)
    why = local.error or local.body.decode(errors="replace").strip() or f"HTTP {local.status}"
    if backup.status != 200:
        failed = backup.error or f"HTTP {backup.status}"
        exchange.error = f"{why}\nthe in-cluster backend did not convert: {failed}"
        return local
    exchange.flags.append(fallback.flag(local))
    exchange.error = why
    return backup


def _analyse(exchange: Exchange, outcome: _Outcome) -> None:
    """The flags (would the apiserver accept this answer? does the patch apply?) and the
    decoded answer, for the subscribers: after the answer went back."""
    checks_started = time.perf_counter_ns()
    answer = outcome.answer
    try:
        if answer.status != 200:
            exchange.flags.append(
                Flag("http-status", f"HTTP {answer.status}: the apiserver fails the call")
            )
            return
        response_review = fast_json.loads_object(answer.body)
        meaning, flags = kinds.read_response(
            outcome.request, answer.body if response_review is None else response_review
        )
        exchange.flags.extend(flags)
        exchange.response_review = response_review
        if meaning is not None:  # a patch was decoded: count it once for the subscribers
            exchange.counted_patch_ops(meaning.patch_op_count)
    finally:
        exchange.checks_ms = elapsed_ms(checks_started)


def _refused(
    exchange: Exchange,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
) -> tuple[web.Response, None]:
    return _refuse(exchange, status, message, headers), None


def _refuse(
    exchange: Exchange, status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    exchange.error = message
    return web.Response(status=status, text=f"webhook-dev: {message}\n", headers=headers)


def _client_closed(request: web.Request) -> str:
    expected = request.content_length
    size = f" of its {expected}-byte body" if expected is not None else " of its body"
    return f"the client closed the connection before sending all{size}; nothing to answer"
