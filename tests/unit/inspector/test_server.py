"""The inspector's web app in-process: the token guard, the ring, the API and the event stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.reviews import pod, request_review
from webhook_dev.inspector import ExchangeFeed, InspectorServer
from webhook_dev.inspector.feed import Message
from webhook_dev.reviews.admission import build_response, parse_request
from webhook_dev.reviews.exchange import Exchange, GenerationReady

TOKEN = "s3cret-token"
COOKIE = "webhook-dev-inspector-4041"


def exchange(number: int, namespace: str = "default") -> Exchange:
    review = request_review(pod(f"web-{number}"), uid=f"uid-{number}", namespace=namespace)
    return Exchange(
        id=f"e{number}",
        started=datetime.now(UTC),
        path="/mutate?timeout=10s",
        http_status=200,
        request_review=review,
        response_review=build_response(parse_request(review), allowed=True),
        duration_ms=2.0,
    )


@pytest.fixture
async def feed_and_client() -> AsyncIterator[tuple[ExchangeFeed, TestClient]]:  # type: ignore[type-arg]
    feed = ExchangeFeed(capacity=3)
    inspector = InspectorServer(feed, port=4041, token=TOKEN)
    client = TestClient(TestServer(inspector.application(), host="127.0.0.1"))
    await client.start_server()
    try:
        yield feed, client
    finally:
        await inspector.close()
        await client.close()


async def test_without_the_token_every_path_is_refused(
    feed_and_client: tuple[ExchangeFeed, TestClient],  # type: ignore[type-arg]
) -> None:
    _, client = feed_and_client
    for path in ("/", "/api/exchanges", "/static/app.js", "/api/events", "/?token=wrong"):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 403, path
        assert "URL webhook-dev printed" in await response.text()


async def test_the_token_in_the_url_becomes_an_httponly_strict_cookie_and_leaves_the_url(
    feed_and_client: tuple[ExchangeFeed, TestClient],  # type: ignore[type-arg]
) -> None:
    _, client = feed_and_client
    response = await client.get(f"/?token={TOKEN}", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert f"{COOKIE}={TOKEN}" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = await client.get("/")  # the client's cookie jar now carries it
    assert page.status == 200
    assert "webhook-dev inspector" in await page.text()
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


async def test_a_host_that_is_not_loopback_is_refused_even_with_the_token(
    feed_and_client: tuple[ExchangeFeed, TestClient],  # type: ignore[type-arg]
) -> None:
    _, client = feed_and_client
    response = await client.get(
        "/api/exchanges",
        headers={"Host": "rebound.example:4041", "Cookie": f"{COOKIE}={TOKEN}"},
    )
    assert response.status == 403


async def test_a_cross_origin_post_is_refused(
    feed_and_client: tuple[ExchangeFeed, TestClient],  # type: ignore[type-arg]
) -> None:
    feed, client = feed_and_client
    feed.add(exchange(1))
    response = await client.post(
        "/api/exchanges/e1/replay",
        headers={"Origin": "http://evil.example", "Cookie": f"{COOKIE}={TOKEN}"},
    )
    assert response.status == 403


async def test_the_list_keeps_only_the_newest_exchanges(
    feed_and_client: tuple[ExchangeFeed, TestClient],  # type: ignore[type-arg]
) -> None:
    feed, client = feed_and_client
    for number in range(5):
        feed.add(exchange(number))
    response = await client.get("/api/exchanges", headers={"Cookie": f"{COOKIE}={TOKEN}"})
    listed = await response.json()
    assert [row["name"] for row in listed["exchanges"]] == [
        "default/web-2",
        "default/web-3",
        "default/web-4",
    ]
    gone = await client.get("/api/exchanges/e0", headers={"Cookie": f"{COOKIE}={TOKEN}"})
    assert gone.status == 404


async def test_replay_without_an_app_says_how_to_get_one(
    feed_and_client: tuple[ExchangeFeed, TestClient],  # type: ignore[type-arg]
) -> None:
    feed, client = feed_and_client
    feed.add(exchange(1))
    response = await client.post(
        "/api/exchanges/e1/replay", headers={"Cookie": f"{COOKIE}={TOKEN}"}
    )
    assert response.status == 409
    assert "--app" in (await response.json())["error"]


async def test_the_event_stream_sends_each_new_exchange_and_worker_news(
    feed_and_client: tuple[ExchangeFeed, TestClient],  # type: ignore[type-arg]
) -> None:
    feed, client = feed_and_client
    response = await client.get("/api/events", headers={"Cookie": f"{COOKIE}={TOKEN}"})
    assert response.headers["Content-Type"] == "text/event-stream"
    first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 30)
    assert first.startswith(b"event: status\n")
    feed.on_event(GenerationReady(generation=2, pid=None, startup_ms=1.0))
    feed.on_exchange(exchange(7, namespace="team-a"))
    status = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 30)
    row = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 30)
    assert json.loads(status.split(b"data: ", 1)[1])["generation"] == 2
    assert row.startswith(b"event: exchange\n")
    assert json.loads(row.split(b"data: ", 1)[1])["name"] == "team-a/web-7"
    response.close()


def test_a_page_that_falls_behind_is_cut_off_instead_of_slowing_the_proxy() -> None:
    feed = ExchangeFeed()
    with feed.listen() as listener:
        for _ in range(listener.queue.maxsize + 1):
            feed._publish(Message("status", {}))
        assert listener.overflowed.is_set()
        assert feed.listener_count() == 0
