"""Shadow mode's route, in-process: the copy entry is answered at once, the comparison
runs after, against a fake production (aiohttp on loopback) and a fake local upstream."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.reviews import request_review
from tests.unit.serving.test_proxy import FakeUpstream, Published, allowed
from webhook_dev.reviews.exchange import Exchange, Hooks
from webhook_dev.reviews.shadow import ShadowSpec
from webhook_dev.serving.production import ProductionAddress
from webhook_dev.serving.proxy import Proxy
from webhook_dev.serving.shadow import PREFIX, Shadower, ShadowTarget
from webhook_dev.serving.upstream import UpstreamRequest, UpstreamResponse

Decide = Callable[[dict[str, Any]], dict[str, Any]]


def allow(review: dict[str, Any]) -> dict[str, Any]:
    return {"allowed": True}


def deny_named_bad(review: dict[str, Any]) -> dict[str, Any]:
    if review["request"]["name"].startswith("bad"):
        return {"allowed": False, "status": {"code": 403, "message": "bad name"}}
    return {"allowed": True}


_stamps = itertools.count()


def stamped(review: dict[str, Any]) -> dict[str, Any]:
    """A production that labels each object with a value of its own: nondeterministic."""
    patch = [{"op": "add", "path": "/metadata/labels", "value": {"stamp": str(next(_stamps))}}]
    return {
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
    }


@dataclass
class Production:
    decide: Decide = allow
    delay: float = 0.0
    calls: int = 0
    bodies: list[bytes] | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.read()
        (self.bodies if self.bodies is not None else []).append(body)
        await asyncio.sleep(self.delay)
        review = json.loads(body)
        response = {"uid": review["request"]["uid"], **self.decide(review)}
        return web.json_response(
            {"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": response}
        )


@dataclass
class Rig:
    client: TestClient  # type: ignore[type-arg]
    upstream: FakeUpstream
    published: Published
    shadower: Shadower
    production: Production
    production_url: str

    def target(self, *, side_effects: str = "None", reachable: bool = True) -> ShadowTarget:
        address = ProductionAddress(self.production_url) if reachable else None
        if not reachable:
            address = ProductionAddress("http://127.0.0.1:9/validate")
        target = ShadowTarget(
            key="k1",
            entry="policy/validate.example.com",
            path="/validate",
            production=address,
            side_effects=side_effects,
            timeout_seconds=2.0,
        )
        self.shadower.add_target(target)
        return target

    async def call(self, name: str = "web-0", uid: str = "u-1") -> tuple[int, dict[str, Any]]:
        review = request_review(uid=uid)
        review["request"]["name"] = name
        response = await self.client.post(f"{PREFIX}k1?timeout=1s", data=json.dumps(review))
        return response.status, await response.json()

    async def published_exchanges(self, count: int) -> list[Exchange]:
        for _ in range(300):
            if len(self.published.exchanges) >= count:
                break
            await asyncio.sleep(0.01)
        return self.published.exchanges


async def make_rig(spec: ShadowSpec, production: Production) -> AsyncIterator[Rig]:
    upstream, published = FakeUpstream(), Published()
    hooks = Hooks([published])
    shadower = Shadower(upstream, hooks, spec)
    proxy = Proxy(upstream, hooks, shadow=shadower)
    prod_app = web.Application()
    prod_app.router.add_post("/validate", production.handle)
    prod_server = TestServer(prod_app)
    await prod_server.start_server()
    client = TestClient(TestServer(proxy.application()))
    await client.start_server()
    try:
        yield Rig(
            client,
            upstream,
            published,
            shadower,
            production,
            str(prod_server.make_url("/validate")),
        )
    finally:
        await shadower.close()
        await client.close()
        await prod_server.close()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async for made in make_rig(ShadowSpec(), Production(deny_named_bad, bodies=[])):
        yield made


async def test_the_copy_is_allowed_at_once_while_both_sides_are_still_answering(rig: Rig) -> None:
    rig.target()
    rig.production.delay = 0.5
    started = time.perf_counter()
    status, answer = await rig.call(name="bad-1")
    took = time.perf_counter() - started
    assert status == 200
    assert answer["response"] == {"uid": "u-1", "allowed": True}  # never a patch, never ours
    assert took < 0.3
    assert rig.published.exchanges == []  # the comparison is still running
    [exchange] = await rig.published_exchanges(1)
    assert exchange.shadow is not None and exchange.shadow.differed


async def test_production_and_local_code_answer_the_identical_request(rig: Rig) -> None:
    rig.target()
    await rig.call(name="bad-1")
    [exchange] = await rig.published_exchanges(1)
    [(local_request, _)] = rig.upstream.calls
    assert local_request.path.startswith("/validate?timeout=")
    assert rig.production.bodies == [local_request.body]
    shadow = exchange.shadow
    assert shadow is not None and shadow.control is not None
    assert shadow.control.review is not None
    assert shadow.control.review["response"]["allowed"] is False
    assert exchange.response["allowed"] is True  # the exchange's own answer is the local code's
    assert shadow.comparison is not None
    assert shadow.comparison.fields == ("allowed", "status.code", "status.message")
    assert rig.shadower.counts.summary() == "shadow: 1 compared, 1 differed (0 noisy)"


async def test_only_the_differing_calls_are_reported(rig: Rig) -> None:
    rig.target()
    for number, name in enumerate(["ok-1", "bad-1", "ok-2", "bad-2", "ok-3"]):
        await rig.call(name=name, uid=f"u-{number}")
    exchanges = await rig.published_exchanges(5)
    differing = sorted(e.request["name"] for e in exchanges if e.shadow and e.shadow.differed)
    assert differing == ["bad-1", "bad-2"]
    assert rig.shadower.counts.summary() == "shadow: 5 compared, 2 differed (0 noisy)"


async def test_a_crashing_local_code_differs_and_changes_no_decision(rig: Rig) -> None:
    rig.target()

    def crash(request: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(500, b"boom", "text/plain", error="Traceback: boom")

    rig.upstream.answer = crash
    status, answer = await rig.call()
    assert status == 200 and answer["response"]["allowed"] is True
    [exchange] = await rig.published_exchanges(1)
    assert exchange.shadow is not None and exchange.shadow.comparison is not None
    assert exchange.shadow.comparison.fields == ("http status",)
    assert exchange.http_status == 500 and exchange.error == "Traceback: boom"


async def test_production_with_side_effects_is_not_called_again(rig: Rig) -> None:
    rig.target(side_effects="Some")
    await rig.call()
    [exchange] = await rig.published_exchanges(1)
    assert rig.production.calls == 0
    assert exchange.shadow is not None and not exchange.shadow.compared
    assert "--allow-side-effects" in (exchange.shadow.skipped or "")
    assert rig.shadower.counts.summary() == (
        "shadow: 0 compared, 0 differed (0 noisy); 1 not compared"
    )


async def test_an_unreachable_production_makes_the_call_not_comparable(rig: Rig) -> None:
    rig.target(reachable=False)
    status, _ = await rig.call()
    assert status == 200
    [exchange] = await rig.published_exchanges(1)
    assert exchange.shadow is not None and exchange.shadow.comparison is not None
    assert "production did not answer" in exchange.shadow.comparison.unknown[0]


async def test_calibration_reports_a_nondeterministic_field_as_noise() -> None:
    async for rig in make_rig(ShadowSpec(calibrate=True), Production(stamped)):
        rig.target()

        def also_stamped(request: UpstreamRequest) -> UpstreamResponse:
            review = json.loads(request.body)
            return allowed(request, **stamped(review))

        rig.upstream.answer = also_stamped
        await rig.call()
        [exchange] = await rig.published_exchanges(1)
        assert rig.production.calls == 2
        shadow = exchange.shadow
        assert shadow is not None and shadow.comparison is not None
        assert shadow.comparison.fields == ()
        assert [d.field for d in shadow.comparison.noise] == ["object"]
        assert rig.shadower.counts.summary() == "shadow: 1 compared, 0 differed (1 noisy)"


async def test_ignored_pointers_do_not_count() -> None:
    spec = ShadowSpec.from_flags(
        calibrate=False, ignore=["/allowed", "/status"], allow_side_effects=False
    )
    async for rig in make_rig(spec, Production(deny_named_bad)):
        rig.target()
        await rig.call(name="bad-1")
        [exchange] = await rig.published_exchanges(1)
        assert exchange.shadow is not None and not exchange.shadow.differed
