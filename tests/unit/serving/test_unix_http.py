"""The lean hop to the worker: framing, keep-alive and failure mapping, against a real
aiohttp server on a Unix socket (what ``app_worker`` runs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from webhook_dev.serving.upstream import BackendGone, UpstreamRequest, UpstreamResponse
from webhook_dev.serving.upstreams.unix_http import ConnectFailed, UnixHttpPool, forward_unix


async def _echo(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    return web.Response(body=body, content_type="application/json", headers={"X-Seen": "1"})


async def _chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for part in (b'{"a":', b"1}"):
        await response.write(part)
    await response.write_eof()
    return response


async def _slow(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(5)
    return web.Response()


async def _drop(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    await asyncio.sleep(0.1)
    return web.Response()


@pytest.fixture
async def socket_path(tmp_path: Path) -> AsyncIterator[Path]:
    app = web.Application()
    app.router.add_post("/echo", _echo)
    app.router.add_post("/chunked", _chunked)
    app.router.add_post("/slow", _slow)
    app.router.add_post("/drop", _drop)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    path = tmp_path / "worker.sock"
    await web.UnixSite(runner, str(path)).start()
    yield path
    await runner.cleanup()


def _call(path: str, body: bytes = b'{"x":1}') -> UpstreamRequest:
    return UpstreamRequest(path=path, body=body, headers={"Content-Type": "application/json"})


async def _not_gone() -> bool:
    return False


async def _gone() -> bool:
    return True


async def _send(
    pool: UnixHttpPool, path: str, budget: float = 5.0, gone: bool = False
) -> UpstreamResponse:
    return await forward_unix(
        pool,
        _call(path),
        budget,
        generation=3,
        who="the app",
        answer_error=lambda headers, body: headers.get("x-seen"),
        disconnected=_gone if gone else _not_gone,
    )


async def test_answers_come_back_whole_and_the_connection_is_reused(socket_path: Path) -> None:
    pool = UnixHttpPool(str(socket_path))
    first = await _send(pool, "/echo?timeout=10s")
    assert (first.status, first.body, first.content_type) == (200, b'{"x":1}', "application/json")
    assert first.generation == 3 and first.error == "1" and first.elapsed_ms is not None
    idle = list(pool._idle)
    second = await _send(pool, "/echo")
    assert second.body == b'{"x":1}' and pool._idle == idle  # the same connection again
    answers = await asyncio.gather(*(_send(pool, "/echo") for _ in range(8)))
    assert all(answer.status == 200 for answer in answers)
    await pool.close()


async def test_a_chunked_answer_is_read_whole(socket_path: Path) -> None:
    pool = UnixHttpPool(str(socket_path))
    answer = await _send(pool, "/chunked")
    assert (answer.status, answer.body) == (200, b'{"a":1}')
    assert (await _send(pool, "/echo")).status == 200
    await pool.close()


async def test_no_socket_is_connect_failed(tmp_path: Path) -> None:
    with pytest.raises(ConnectFailed):
        await _send(UnixHttpPool(str(tmp_path / "nothing.sock")), "/echo")


async def test_the_deadline_is_a_504_and_a_drop_a_502_or_backend_gone(socket_path: Path) -> None:
    pool = UnixHttpPool(str(socket_path))
    slow = await _send(pool, "/slow", budget=0.2)
    assert slow.status == 504 and "did not answer before the call's deadline" in (slow.error or "")
    dropped = await _send(pool, "/drop")
    assert dropped.status == 502 and "the app dropped the call" in (dropped.error or "")
    with pytest.raises(BackendGone):
        await _send(pool, "/drop", gone=True)
    assert (await _send(pool, "/echo")).status == 200  # a broken connection is never reused
    await pool.close()


async def test_a_connection_the_worker_closed_while_idle_is_not_reused(socket_path: Path) -> None:
    pool = UnixHttpPool(str(socket_path))
    assert (await _send(pool, "/echo")).status == 200
    _, writer = pool._idle[0]
    writer.transport.abort()  # as when the worker's keep-alive timer closes it
    await asyncio.sleep(0.05)
    assert (await _send(pool, "/echo")).status == 200
    await pool.close()
