"""A conversion the local code cannot answer, answered by the Service's in-cluster backend
(here a loopback TLS server verified as the apiserver verifies the Service's Pod)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.reviews import conversion_review, request_review
from tests.tls_production import tls_production
from tests.unit.serving.test_proxy import FakeUpstream, Front, post, serving
from webhook_dev.serving.fallback import FLAG_CODE, ConversionFallback
from webhook_dev.serving.production import ProductionAddress
from webhook_dev.serving.upstream import UpstreamRequest, UpstreamResponse

SERVICE_NAME = "website.website.svc"
TRACEBACK = "Traceback (most recent call last):\n  ...\nRuntimeError: half-written conversion"


async def in_cluster(request: web.Request) -> web.Response:
    """The in-cluster manager: converts each object by setting the desired apiVersion."""
    review = await request.json()
    desired = review["request"]["desiredAPIVersion"]
    objects = [{**obj, "apiVersion": desired} for obj in review["request"]["objects"]]
    response = {"uid": review["request"]["uid"], "result": {"status": "Success"}}
    return web.json_response({**review, "response": {**response, "convertedObjects": objects}})


def crashed(request: UpstreamRequest) -> UpstreamResponse:
    return UpstreamResponse(500, b"", generation=2, error=TRACEBACK)


def failure(request: UpstreamRequest) -> UpstreamResponse:
    """The local code's own decision: a Failure, which is never replaced."""
    review = json.loads(request.body)
    response = {"uid": review["request"]["uid"], "result": {"status": "Failure", "message": "no"}}
    body = json.dumps({**review, "response": response}).encode()
    return UpstreamResponse(200, body, generation=2)


@pytest.fixture
async def front(tmp_path: Path) -> AsyncIterator[Front]:
    async with tls_production(tmp_path, SERVICE_NAME, in_cluster, path="/convert") as served:
        port, ca_pem = served
        address = ProductionAddress(
            f"https://{SERVICE_NAME}:443/convert", ca_pem, dial=("127.0.0.1", port)
        )
        fallback = ConversionFallback({"/convert": address})
        try:
            async with serving(FakeUpstream(crashed)) as front:
                front.proxy.fallback = fallback
                yield front
        finally:
            await fallback.close()


async def convert(front: Front) -> tuple[int, Any]:
    response = await post(front, conversion_review(), path="/convert?timeout=30s")
    return response.status, await response.json() if response.status == 200 else None


async def test_the_in_cluster_backend_converts_and_the_call_keeps_the_local_error(
    front: Front,
) -> None:
    started = asyncio.get_running_loop().time()
    status, answer = await convert(front)
    assert status == 200
    assert answer["response"]["result"]["status"] == "Success"
    assert answer["response"]["convertedObjects"][0]["apiVersion"] == "samples.webhook-dev.io/v2"
    exchange = front.only_exchange
    assert [flag.code for flag in exchange.flags] == [FLAG_CODE]
    assert "HTTP 500" in exchange.flags[0].message
    assert exchange.error == TRACEBACK  # the developer still sees why
    assert exchange.response["result"]["status"] == "Success"
    # The local code had the call's deadline less the backend's reserve (30 s - 5 s).
    [(_, deadline)] = front.upstream.calls
    assert deadline - started == pytest.approx(25.0, abs=0.5)


async def test_an_answer_the_local_code_gave_is_never_replaced(front: Front) -> None:
    front.upstream.answer = failure
    status, answer = await convert(front)
    assert status == 200 and answer["response"]["result"]["status"] == "Failure"
    assert FLAG_CODE not in {flag.code for flag in front.only_exchange.flags}


async def test_an_admission_call_gets_no_fallback(front: Front) -> None:
    response = await post(front, request_review(), path="/convert")
    assert response.status == 500
    assert FLAG_CODE not in {flag.code for flag in front.only_exchange.flags}


async def test_when_the_backend_fails_too_the_call_fails_saying_both(front: Front) -> None:
    assert front.proxy.fallback is not None
    unreachable = ProductionAddress(
        f"https://{SERVICE_NAME}:443/convert", None, dial=("127.0.0.1", 1)
    )
    front.proxy.fallback = ConversionFallback({"/convert": unreachable})
    try:
        status, _ = await convert(front)
    finally:
        await front.proxy.fallback.close()
    assert status == 500
    error = front.only_exchange.error or ""
    assert error.startswith(TRACEBACK)
    assert "the in-cluster backend did not convert: cannot reach" in error
