"""Durations come from a high-resolution clock, with phases (issue 15, finding 9).

On uvloop ``loop.time()`` is libuv's cached millisecond: every duration the proxy took
from it was a whole millisecond. In-process proxy on loopback, a fake upstream (pure
timing logic, no app).
"""

from __future__ import annotations

import json
import socket

import aiohttp
import uvloop
from aiohttp import web

from tests.reviews import request_review
from webhook_dev.recording import format as recording
from webhook_dev.reviews.exchange import Exchange, Hooks, now
from webhook_dev.serving.proxy import Proxy
from webhook_dev.serving.upstream import UpstreamRequest, UpstreamResponse

CALLS = 40


class Instant:
    """An upstream that allows at once, so each call takes a fraction of a millisecond."""

    generation = 1

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, request: UpstreamRequest, deadline: float) -> UpstreamResponse:
        uid = json.loads(request.body)["request"]["uid"]
        answer = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": uid, "allowed": True},
        }
        return UpstreamResponse(200, json.dumps(answer).encode(), elapsed_ms=0.01, wait_ms=0.0)

    async def reload(self, reason: str) -> None: ...

    def request_reload(self, reason: str) -> None: ...


class Collect:
    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def on_exchange(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)


async def _calls(collect: Collect) -> None:
    proxy = Proxy(Instant(), Hooks([collect]))
    runner = web.AppRunner(proxy.application())
    await runner.setup()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        await web.SockSite(runner, listener).start()
        body = json.dumps(request_review()).encode()
        async with aiohttp.ClientSession() as session:
            for _ in range(CALLS):
                async with session.post(f"http://127.0.0.1:{port}/mutate", data=body) as answer:
                    assert answer.status == 200
    await runner.cleanup()
    proxy.flush()  # as the serving stack does on close: the last exchange is published


def test_durations_on_uvloop_are_not_whole_milliseconds_and_phases_are_recorded() -> None:
    collect = Collect()
    uvloop.run(_calls(collect))
    durations = [exchange.duration_ms for exchange in collect.exchanges]
    assert len(durations) == CALLS
    fractional = [d for d in durations if d != round(d)]
    assert len(fractional) > CALLS * 0.9, durations
    for exchange in collect.exchanges:
        assert exchange.read_ms is not None and exchange.checks_ms is not None
        assert exchange.wait_ms == 0.0
        phases = exchange.read_ms + exchange.wait_ms + (exchange.upstream_ms or 0)
        assert phases <= exchange.duration_ms  # the checks run after the answer went back
        assert exchange.checks_ms > 0
        line = json.loads(recording.encode(exchange, redaction_key=None))
        assert {"read_ms", "wait_ms", "checks_ms"} <= line.keys()
        assert recording.decode(json.dumps(line)).checks_ms == line["checks_ms"]


def test_old_lines_without_phases_still_read() -> None:
    exchange = Exchange(id="x", started=now(), path="/")
    line = json.loads(recording.encode(exchange, redaction_key=None))
    assert "wait_ms" not in line
    assert recording.decode(json.dumps(line)).wait_ms is None
