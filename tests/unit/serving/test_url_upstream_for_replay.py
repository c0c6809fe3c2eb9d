"""Replay's ``--url``: which address each call goes to, and what an unreachable URL says."""

from __future__ import annotations

import asyncio
import socket

import pytest

from webhook_dev.errors import UsageError
from webhook_dev.serving.upstream import UpstreamRequest
from webhook_dev.serving.upstreams.url import UrlUpstream


def test_a_url_with_a_path_takes_every_call_and_a_bare_host_gets_the_recorded_path() -> None:
    exact = UrlUpstream.for_replay("https://127.0.0.1:9443/hooks/inject")
    assert exact.upstream.target("/mutate?timeout=10s") == "https://127.0.0.1:9443/hooks/inject"
    bare = UrlUpstream.for_replay("https://127.0.0.1:9443/")
    assert (
        bare.upstream.target("/mutate?timeout=10s") == "https://127.0.0.1:9443/mutate?timeout=10s"
    )


def test_a_url_that_is_not_http_is_a_usage_error_naming_the_flag() -> None:
    with pytest.raises(UsageError, match=r"--url '127.0.0.1:9443' is not an http:// or https://"):
        UrlUpstream.for_replay("127.0.0.1:9443")


def test_replay_reports_a_refused_connection_at_once_instead_of_waiting() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens once the socket is closed

    async def send() -> tuple[int, str | None, float]:
        upstream = UrlUpstream.for_replay(f"http://127.0.0.1:{port}")
        await upstream.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            request = UpstreamRequest("/mutate", b"{}", {"Content-Type": "application/json"})
            answer = await upstream.send(request, started + 10)
        finally:
            await upstream.close()
        return answer.status, answer.error, loop.time() - started

    status, error, seconds = asyncio.run(send())
    assert status == 0 and error is not None
    assert error.startswith(f"cannot reach http://127.0.0.1:{port}/mutate: ")
    assert seconds < 5
