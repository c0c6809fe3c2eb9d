"""The user's app served inside this process: for replay's shards, which never reload.

A replay shard sends every recorded call to the app and compares the answers; with the
app in a worker process of its own, each call crossed two processes on the same cores,
and the shard spent much of its time in the write that woke the worker. Here the app runs
on the shard's own event loop, on a Unix socket in a private directory, behind the same
middleware a worker uses (an exception or ``sys.exit()`` in a handler is answered with
its traceback), and calls reach it through the same lean HTTP/1.1 pool — with no process
switch in between.

What a worker process gives ``serve`` and this does not: reloading, and surviving a
handler that kills its process (``os._exit``, a crash) — here that ends the shard, and
the replay reports it. A replay needs neither.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

from aiohttp import web

from webhook_dev.errors import UsageError
from webhook_dev.serving.upstream import UpstreamRequest, UpstreamResponse
from webhook_dev.serving.upstreams.app import check_app_spec, handler_traceback
from webhook_dev.serving.upstreams.app_worker import serve_app
from webhook_dev.serving.upstreams.forward import failure
from webhook_dev.serving.upstreams.unix_http import ConnectFailed, UnixHttpPool, forward_unix

GENERATION = 1  # one app for the whole run


class InProcessApp:
    """Upstream: APP (``module[:attr]``) imported and served in this process."""

    def __init__(self, app: str, *, cwd: Path | None = None) -> None:
        self.app = app
        self.cwd = (cwd or Path.cwd()).resolve()
        self._directory: Path | None = None
        self._runner: web.AppRunner | None = None
        self._pool: UnixHttpPool | None = None

    @property
    def generation(self) -> int | None:
        return GENERATION if self._pool is not None else None

    async def start(self) -> None:
        """Import and serve APP; :class:`UsageError` with the traceback if it cannot."""
        check_app_spec(self.app, self.cwd)
        if str(self.cwd) not in sys.path:
            sys.path.insert(0, str(self.cwd))
        self._directory = Path(tempfile.mkdtemp(prefix="webhook-dev-"))
        socket_path = str(self._directory / "app.sock")
        try:
            self._runner = await serve_app(self.app, socket_path)
        except Exception as error:
            await self.close()
            raise UsageError(f"APP {self.app} did not start:\n{traceback.format_exc()}") from error
        self._pool = UnixHttpPool(socket_path)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    async def send(self, request: UpstreamRequest, deadline: float) -> UpstreamResponse:
        if self._pool is None:
            return failure(503, f"{self.app} is not running", generation=None)
        budget = deadline - asyncio.get_running_loop().time()
        try:
            return await forward_unix(
                self._pool,
                request,
                budget,
                generation=GENERATION,
                who="the app",
                answer_error=handler_traceback,
                disconnected=_never,
            )
        except ConnectFailed as error:
            return failure(503, f"{self.app} is not reachable: {error}", generation=None)

    async def reload(self, reason: str) -> None:
        """Nothing to reload: a replay runs one version of the code."""

    def request_reload(self, reason: str) -> None:
        """Nothing to reload: a replay runs one version of the code."""


async def _never() -> bool:
    return False
