"""One call POSTed to a backend over HTTP: the part every upstream shares.

The aiohttp workers (over a Unix socket), a URL the user runs, and replay all send an
AdmissionReview the same way and read the same failures from it. What differs stays with
the caller: what a refused connection means (wait for the port, try the next generation,
or report it) and what in an answer counts as an error.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import aiohttp

from webhook_dev.serving.upstream import BackendGone, UpstreamRequest, UpstreamResponse

AnswerError = Callable[[aiohttp.ClientResponse, bytes], str | None]
Disconnected = Callable[[], Awaitable[bool]]


def _no_error(response: aiohttp.ClientResponse, body: bytes) -> str | None:
    return None


async def forward(
    session: aiohttp.ClientSession,
    url: str,
    request: UpstreamRequest,
    budget: float,
    *,
    generation: int | None,
    who: str,
    answer_error: AnswerError = _no_error,
    disconnected: Disconnected | None = None,
) -> UpstreamResponse:
    """POST ``request`` to ``url`` within ``budget`` seconds and say what came back.

    A timeout is a 504 and any other client error a 502, each explained as ``<who> did
    not answer ...`` / ``<who> dropped the call ...``: the call may have reached the code,
    so neither may be sent again. ``answer_error`` reads an answer's ``error`` (e.g. the
    worker's traceback header).

    :raises aiohttp.ClientConnectorError: no connection, so the call certainly did not
        reach the code; the caller decides what that means.
    :raises BackendGone: the connection dropped and ``disconnected()`` says the backend is
        going away (so the call can be sent to the next one).
    """
    started = time.perf_counter_ns()
    try:
        async with session.post(
            url,
            data=request.body,
            headers=dict(request.headers),
            timeout=aiohttp.ClientTimeout(total=max(budget, 0.1)),
        ) as response:
            body = await response.read()
            return UpstreamResponse(
                status=response.status,
                body=body,
                content_type=response.content_type,
                generation=generation,
                error=answer_error(response, body),
                elapsed_ms=(time.perf_counter_ns() - started) / 1e6,
            )
    except aiohttp.ClientConnectorError:
        raise
    except TimeoutError:
        message = f"{who} did not answer before the call's deadline"
        return failure(504, message, generation=generation, since=started)
    except aiohttp.ClientError as error:
        dropped = isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)
        if dropped and disconnected is not None and await disconnected():
            raise BackendGone() from error
        return failure(
            502, f"{who} dropped the call: {error!r}", generation=generation, since=started
        )


def failure(
    status: int, message: str, *, generation: int | None, since: int | None = None
) -> UpstreamResponse:
    """An answer webhook-dev gives itself: ``message`` as plain text, and as the error.

    ``since``: the :func:`time.perf_counter_ns` the call was sent at, for its elapsed time.
    """
    elapsed_ms = None if since is None else (time.perf_counter_ns() - since) / 1e6
    return UpstreamResponse(
        status,
        f"webhook-dev: {message}\n".encode(),
        "text/plain",
        generation=generation,
        error=message,
        elapsed_ms=elapsed_ms,
    )
