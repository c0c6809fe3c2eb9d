"""The proxy's answers, in-process: aiohttp's test client against ``Proxy.application()``.

A fake upstream stands in for the user's app, so each test says exactly what the app
answered and checks what the apiserver gets back, what the upstream was asked, and the
one Exchange the hooks see per call.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.reviews import request_review
from webhook_dev.reviews.exchange import Exchange, Hooks
from webhook_dev.serving import proxy as proxy_module
from webhook_dev.serving.proxy import Proxy
from webhook_dev.serving.upstream import UpstreamRequest, UpstreamResponse

Answer = Callable[[UpstreamRequest], UpstreamResponse]


def allowed(request: UpstreamRequest, **response: Any) -> UpstreamResponse:
    """What a well-behaved webhook answers: allowed, echoing the request's uid."""
    review = json.loads(request.body)
    body = {
        "apiVersion": review["apiVersion"],
        "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": True, **response},
    }
    return UpstreamResponse(200, json.dumps(body).encode(), generation=1, elapsed_ms=1.0)


@dataclass
class FakeUpstream:
    """An Upstream (webhook_dev.serving.upstream) that answers with ``answer``."""

    answer: Answer = allowed
    calls: list[tuple[UpstreamRequest, float]] = field(default_factory=list)

    @property
    def generation(self) -> int | None:
        return 1

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def send(self, request: UpstreamRequest, deadline: float) -> UpstreamResponse:
        self.calls.append((request, deadline))
        return self.answer(request)

    async def reload(self, reason: str) -> None:
        pass

    def request_reload(self, reason: str) -> None:
        pass


class Published:
    """A hooks subscriber keeping every Exchange the proxy publishes."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def on_exchange(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)


@dataclass
class Front:
    client: TestClient  # type: ignore[type-arg]
    upstream: FakeUpstream
    published: Published
    proxy: Proxy

    @property
    def exchanges(self) -> list[Exchange]:
        """Every exchange answered so far, analysed and published (as on shutdown)."""
        self.proxy.flush()
        return self.published.exchanges

    @property
    def only_exchange(self) -> Exchange:
        exchanges = self.exchanges
        assert len(exchanges) == 1, exchanges
        return exchanges[0]


@contextlib.asynccontextmanager
async def serving(upstream: FakeUpstream) -> AsyncIterator[Front]:
    """A proxy in front of ``upstream``, served to a test client; closed after."""
    published = Published()
    proxy = Proxy(upstream, Hooks([published]), max_body=1024 * 1024)
    client = TestClient(TestServer(proxy.application()))
    await client.start_server()
    try:
        yield Front(client, upstream, published, proxy)
    finally:
        await client.close()


@pytest.fixture
async def front() -> AsyncIterator[Front]:
    async with serving(FakeUpstream()) as served:
        yield served


async def post(front: Front, body: bytes | dict[str, Any], path: str = "/mutate") -> Any:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    return await front.client.post(path, data=data, headers={"Content-Type": "application/json"})


async def test_a_get_is_refused_with_405_and_allow_post(front: Front) -> None:
    response = await front.client.get("/mutate")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert "method GET not allowed" in await response.text()
    assert front.upstream.calls == []
    assert front.only_exchange.http_status == 405


async def test_an_oversized_body_is_refused_with_413_naming_the_limit(front: Front) -> None:
    response = await post(front, b"x" * (1024 * 1024 + 1))
    assert response.status == 413
    text = await response.text()
    assert "request body too large" in text and f"the limit is {1024 * 1024} bytes" in text
    assert front.upstream.calls == []
    assert front.only_exchange.http_status == 413


def without_uid() -> dict[str, Any]:
    review = request_review()
    review["request"]["uid"] = ""
    return review


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<xml/>", "request body is not JSON"),
        (b"[1, 2]", "expected a JSON object (an AdmissionReview or ConversionReview)"),
        ({"apiVersion": "v1", "kind": "Pod"}, "not an AdmissionReview or ConversionReview"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "no request object"),
        (without_uid(), "no uid"),
        (
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "ConversionReview",
                "request": {"uid": "u-1", "objects": []},
            },
            "no desiredAPIVersion",
        ),
        (
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "ConversionReview",
                "request": {"uid": "u-1", "desiredAPIVersion": "a.b/v2", "objects": [{"kind": 1}]},
            },
            "request.objects[0].apiVersion must be a string",
        ),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "not-a-review",
        "no-request",
        "no-uid",
        "conversion-without-desired-version",
        "conversion-object-without-apiversion",
    ],
)
async def test_bad_input_is_a_400_saying_what_is_wrong_and_never_reaches_the_app(
    front: Front, body: bytes | dict[str, Any], message: str
) -> None:
    response = await post(front, body)
    assert response.status == 400
    text = await response.text()
    assert text.startswith("webhook-dev: ") and message in text, text
    assert front.upstream.calls == []
    exchange = front.only_exchange
    assert exchange.http_status == 400 and exchange.error is not None and message in exchange.error
    assert exchange.request_review is None


async def test_a_good_answer_passes_through_unchanged_and_is_published_once(front: Front) -> None:
    review = request_review()
    response = await post(front, review, path="/mutate?timeout=10s")
    assert response.status == 200
    answer = await response.json()
    assert answer["response"] == {"uid": "3f1c-uid", "allowed": True}
    exchange = front.only_exchange
    assert exchange.http_status == 200
    assert exchange.path == "/mutate?timeout=10s"
    assert exchange.request_review == review
    assert exchange.response_review == answer
    assert exchange.flags == [] and exchange.generation == 1
    [(forwarded, _)] = front.upstream.calls
    assert forwarded.path == "/mutate?timeout=10s"
    assert json.loads(forwarded.body) == review


async def test_a_wrong_uid_is_passed_through_and_flagged_uid_mismatch(front: Front) -> None:
    def wrong_uid(request: UpstreamRequest) -> UpstreamResponse:
        body = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": "someone-else", "allowed": True},
        }
        return UpstreamResponse(200, json.dumps(body).encode())

    front.upstream.answer = wrong_uid
    response = await post(front, request_review())
    assert response.status == 200  # the apiserver decides; we tell the developer
    assert (await response.json())["response"]["uid"] == "someone-else"
    assert [flag.code for flag in front.only_exchange.flags] == ["uid-mismatch"]


async def test_a_patch_that_does_not_apply_is_passed_through_and_flagged(front: Front) -> None:
    patch = [{"op": "replace", "path": "/spec/nothing/here", "value": 1}]
    encoded = base64.b64encode(json.dumps(patch).encode()).decode()
    front.upstream.answer = lambda request: allowed(request, patchType="JSONPatch", patch=encoded)
    response = await post(front, request_review())
    assert response.status == 200
    assert (await response.json())["response"]["patch"] == encoded
    exchange = front.only_exchange
    assert [flag.code for flag in exchange.flags] == ["patch-does-not-apply"]
    assert exchange.http_status == 200


async def test_a_handler_error_is_a_500_naming_the_exception_not_the_traceback(
    front: Front,
) -> None:
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "hook.py", line 7, in mutate\n'
        "ZeroDivisionError: division by zero\n"
    )
    front.upstream.answer = lambda request: UpstreamResponse(
        500, b"", content_type="text/plain", generation=3, error=traceback
    )
    response = await post(front, request_review())
    assert response.status == 500
    text = await response.text()
    assert text == (
        "the webhook raised ZeroDivisionError: division by zero "
        "(traceback in webhook-dev's console)\n"
    )
    exchange = front.only_exchange
    assert exchange.http_status == 500 and exchange.error == traceback
    assert exchange.generation == 3
    assert [flag.code for flag in exchange.flags] == ["http-status"]
    assert exchange.response_review is None


async def test_another_upstream_status_passes_through_with_its_body(front: Front) -> None:
    front.upstream.answer = lambda request: UpstreamResponse(
        503, b"webhook-dev: no worker is running the app\n", content_type="text/plain"
    )
    response = await post(front, request_review())
    assert response.status == 503
    assert await response.text() == "webhook-dev: no worker is running the app\n"
    assert front.only_exchange.http_status == 503


@pytest.mark.parametrize(
    ("query", "seconds"),
    [("?timeout=7s", 7.0), ("?timeout=1m30s", 90.0), ("", 10.0), ("?timeout=junk", 10.0)],
    ids=["7s", "1m30s", "absent", "unreadable"],
)
async def test_the_apiservers_timeout_is_the_deadline_given_to_the_upstream(
    front: Front, query: str, seconds: float
) -> None:
    """Without a readable ``?timeout=`` the apiserver's default of 10s applies."""
    loop = asyncio.get_running_loop()
    before = loop.time()
    response = await post(front, request_review(), path=f"/mutate{query}")
    after = loop.time()
    assert response.status == 200
    [(_, deadline)] = front.upstream.calls
    assert before + seconds <= deadline <= after + seconds


async def test_each_call_publishes_exactly_one_exchange_with_its_status(front: Front) -> None:
    await front.client.get("/")
    await post(front, b"nope")
    await post(front, request_review())
    statuses = [exchange.http_status for exchange in front.exchanges]
    assert statuses == [405, 400, 200]
    assert len({exchange.id for exchange in front.exchanges}) == 3
    assert all(exchange.duration_ms >= 0 for exchange in front.exchanges)


async def test_an_answered_call_is_analysed_once_the_next_call_waits_for_its_upstream(
    front: Front, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The analysis of one call overlaps the next call's wait, never its answer."""
    monkeypatch.setattr(proxy_module, "IDLE_FLUSH_SECONDS", 60.0)  # only the next call
    seen_when_sending: list[int] = []
    answer = front.upstream.answer

    def counting(request: UpstreamRequest) -> UpstreamResponse:
        seen_when_sending.append(len(front.published.exchanges))
        return answer(request)

    front.upstream.answer = counting
    await post(front, request_review())
    await post(front, request_review())
    await asyncio.sleep(0)  # the second call's wait is over at once: let the loop turn
    # Not before the second call was sent upstream; by then published, with no timer.
    assert seen_when_sending == [0, 0]
    assert len(front.published.exchanges) >= 1
    assert [e.http_status for e in front.exchanges] == [200, 200]


async def test_a_lone_call_is_published_soon_without_another_call(front: Front) -> None:
    await post(front, request_review())
    for _ in range(100):  # IDLE_FLUSH_SECONDS is 2 ms; allow a slow machine
        if front.published.exchanges:
            break
        await asyncio.sleep(0.01)
    assert len(front.published.exchanges) == 1
    assert front.published.exchanges[0].response_review is not None
