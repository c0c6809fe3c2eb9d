"""Shadow mode's route with the real stack: TLS proxy, the sample's worker process, and a
fake production HTTPS server on loopback that verifies nothing but answers as production.

What the apiserver would see: the copy is answered ``allowed`` at once — even while the
local code's worker is stopped (SIGSTOP) — and the comparison of the local code's answer
with production's arrives later, on the hooks, as the console and recorder get it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.reviews import request_review
from tests.tls_production import tls_production
from webhook_dev.reviews.exchange import Event, Exchange, GenerationReady
from webhook_dev.reviews.shadow import SHADOW_PATH, ShadowSpec
from webhook_dev.serving.production import ProductionAddress
from webhook_dev.serving.shadow import ShadowTarget
from webhook_dev.serving.spec import ServingSpec
from webhook_dev.serving.stack import ServingStack

PRODUCTION_NAME = "injector.team.svc"


class Seen:
    """The hooks' view: published exchanges, and the worker's pid."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self.worker_pid: int | None = None
        self._published = asyncio.Event()

    def on_exchange(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)
        self._published.set()

    def on_event(self, event: Event) -> None:
        if isinstance(event, GenerationReady):
            self.worker_pid = event.pid

    async def until(self, count: int) -> list[Exchange]:
        async with asyncio.timeout(20):
            while len(self.exchanges) < count:
                self._published.clear()
                await self._published.wait()
        return self.exchanges


async def production_answer(request: web.Request) -> web.Response:
    """Production today: allows every Pod, injects nothing."""
    review = await request.json()
    response = {"uid": review["request"]["uid"], "allowed": True}
    return web.json_response({**review, "response": response})


@pytest.fixture
async def production(tmp_path: Path) -> AsyncIterator[tuple[int, bytes]]:
    async with tls_production(tmp_path, PRODUCTION_NAME, production_answer) as served:
        yield served


async def test_the_copy_is_answered_at_once_and_the_difference_arrives_after(
    production: tuple[int, bytes], state_dir: Path
) -> None:
    port, ca_pem = production
    seen = Seen()
    stack = ServingStack.from_spec(
        ServingSpec(app="sample_webhook.sidecar_injector", record=None, reload=False),
        port=0,
        subscribers=[seen],
        shadow=ShadowSpec(),
    )
    async with stack:
        assert stack.shadow is not None
        stack.shadow.add_target(
            ShadowTarget(
                key="k1",
                entry="MutatingWebhookConfiguration team/sidecar.example.com",
                path="/mutate",
                production=ProductionAddress(
                    f"https://{PRODUCTION_NAME}:443/mutate", ca_pem, dial=("127.0.0.1", port)
                ),
            )
        )
        client_tls = ssl.create_default_context()  # the proxy's TLS is tested elsewhere
        client_tls.check_hostname = False
        client_tls.verify_mode = ssl.CERT_NONE
        url = f"https://127.0.0.1:{stack.port}{SHADOW_PATH}k1?timeout=1s"

        async def call(uid: str) -> tuple[dict[str, Any], float]:
            started = time.perf_counter()
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    url, data=json.dumps(request_review(uid=uid)), ssl=client_tls
                ) as response,
            ):
                assert response.status == 200
                body = await response.json()
            return body, time.perf_counter() - started

        answer, _ = await call("u-1")
        assert answer["response"] == {"uid": "u-1", "allowed": True}
        [exchange] = await seen.until(1)
        assert exchange.shadow is not None and exchange.shadow.comparison is not None
        assert exchange.shadow.comparison.fields == ("object",)  # the sidecar: ours only
        assert exchange.patch_ops() == 3

        # The local code stuck: the copy is still answered at once; the comparison waits.
        assert seen.worker_pid is not None
        os.kill(seen.worker_pid, signal.SIGSTOP)
        try:
            answer, took = await call("u-2")
            assert answer["response"]["allowed"] is True
            assert took < 0.5, f"the copy took {took:.2f} s with the worker stopped"
        finally:
            os.kill(seen.worker_pid, signal.SIGCONT)
        [_, second] = await seen.until(2)
        assert second.shadow is not None and second.shadow.differed
    assert stack.shadow.counts.summary() == "shadow: 2 compared, 2 differed (0 noisy)"
