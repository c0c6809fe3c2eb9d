"""The user's app in worker processes: the :class:`AppUpstream` upstream.

Each generation is a ``webhook_dev.serving.upstreams.app_worker`` child listening on a Unix
socket in a private
temporary directory (nothing but the proxy can reach it). One spare child is kept ready
with aiohttp already imported, so a reload costs only the user's own import.

Workers never outlive us: their stdin is a pipe from this process (EOF when we die, even
by SIGKILL) and on Linux they also ask for ``PR_SET_PDEATHSIG``. They run in their own
session so a Ctrl-C in the terminal reaches us, and we stop them after draining.

A worker is replaced by the spare, without failing the calls of others, when

* a handler calls ``sys.exit()`` or raises ``KeyboardInterrupt`` (the worker answers that
  call with its traceback and keeps answering the others until it is drained and
  stopped like any old generation);
* it dies (a call whose connection dropped with it is retried once on the next worker);
* its event loop stops answering the health check (a ``ping`` every
  :data:`HEALTH_INTERVAL` s, unanswered for :data:`HEALTH_TIMEOUT` s: a handler blocking
  the loop, e.g. ``time.sleep``), and the console says so.

Its resident memory is sampled with each health check and published
(:class:`~webhook_dev.reviews.exchange.GenerationMemory`), with a warning past
:data:`RSS_WARNING_BYTES` (``WEBHOOK_DEV_WORKER_RSS_WARNING_MB`` to change it).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from webhook_dev.errors import UsageError
from webhook_dev.reviews.exchange import GenerationKind, GenerationMemory, Hooks
from webhook_dev.serving.upstream import (
    BackendGone,
    BackendStartError,
    Handover,
    UpstreamRequest,
    UpstreamResponse,
)
from webhook_dev.serving.upstreams.app_worker import (
    ERROR_HEADER,
    PARENT_ENV,
    AppSpecError,
    split_spec,
)
from webhook_dev.serving.upstreams.child_process import WatchedChild, wait_or_kill
from webhook_dev.serving.upstreams.unix_http import ConnectFailed, UnixHttpPool, forward_unix

STARTUP_TIMEOUT = 60.0
STOP_GRACE = 5.0
HEALTH_INTERVAL = 0.5
HEALTH_TIMEOUT = 3.0
EXIT_WAIT = 1.0  # after a dropped connection: how long to wait to see whether it died
RSS_WARNING_BYTES = int(os.environ.get("WEBHOOK_DEV_WORKER_RSS_WARNING_MB", "1024")) * 2**20
_MEMORY_REPORT_STEP = 16 * 2**20  # publish a new figure when it moved by this much


def resident_bytes(pid: int) -> int | None:
    """A process's resident set size, from ``/proc`` (``None`` where there is none)."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def check_app_spec(spec: str, cwd: Path) -> None:
    """Fail fast (exit 2) on an APP whose top-level module cannot be found at all.

    Only *finds* the module; running the user's code happens in the worker, where an
    error is shown and the next save is awaited instead of exiting.
    """
    try:
        module, _ = split_spec(spec)
    except AppSpecError as error:
        raise UsageError(str(error)) from error
    top = module.split(".")[0]
    sys.path.insert(0, str(cwd))
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        found = None
    finally:
        sys.path.remove(str(cwd))
    if found is None:
        raise UsageError(
            f"cannot find module {top!r} for APP {spec!r} (looked in {cwd} and sys.path)",
            hint="run from your project's directory, or give APP as package.module[:attr]",
        )


_ERROR_HEADER = ERROR_HEADER.lower()


def handler_traceback(headers: Mapping[str, str], body: bytes) -> str | None:
    """The handler's traceback, which the worker sends as the body of a marked 500
    (``headers``: names lower-cased)."""
    return body.decode(errors="replace") if _ERROR_HEADER in headers else None


class WorkerProcess(WatchedChild):
    """One child process; becomes a generation once :meth:`start_app` succeeds."""

    def __init__(
        self, process: asyncio.subprocess.Process, socket_path: Path, ready: asyncio.StreamReader
    ) -> None:
        self.process = process
        self.socket_path = socket_path
        self._ready = ready
        self.generation = 0
        self.pid: int | None = process.pid
        self.startup_ms = 0.0
        self._pool: UnixHttpPool | None = None
        self._stopping = False
        self._exiting = False  # it said it is exiting, or stopped answering health checks
        self._tasks: list[asyncio.Task[None]] = []
        self._replace: Callable[[WorkerProcess, str], None] | None = None
        self.rss_bytes: int | None = None
        # Tasks inside send(), with when each began; those taken back, and which is suspect.
        self._calls: dict[asyncio.Task[object], float] = {}
        self._abandoned: dict[asyncio.Task[object], bool] = {}

    @classmethod
    async def spawn(cls, cwd: Path, socket_path: Path) -> WorkerProcess:
        ready_read, ready_write = os.pipe()
        env = dict(os.environ, PYTHONUNBUFFERED="1", **{PARENT_ENV: str(os.getpid())})
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "webhook_dev.serving.upstreams.app_worker",
                "--socket",
                str(socket_path),
                "--ready-fd",
                str(ready_write),
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                pass_fds=(ready_write,),
                start_new_session=True,
            )
        finally:
            os.close(ready_write)
        loop = asyncio.get_running_loop()
        ready = asyncio.StreamReader()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(ready), os.fdopen(ready_read, "rb")
        )
        return cls(process, socket_path, ready)

    @property
    def alive(self) -> bool:
        return self.process.returncode is None and not self._stopping and not self._exiting

    def watch_health(self, replace: Callable[[WorkerProcess, str], None], hooks: Hooks) -> None:
        """Ping the worker's event loop; call ``replace(self, why)`` if it stops answering
        or says it exits; publish its memory on the way."""
        self._replace = replace
        self._tasks.append(asyncio.create_task(self._check_health(hooks)))

    def _retire(self, why: str) -> None:
        if self._exiting or self._stopping:
            return
        self._exiting = True
        if self._replace is not None:
            self._replace(self, why)

    async def _check_health(self, hooks: Hooks) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        reported = 0
        warned = False
        while self.alive:
            try:
                stdin.write(b"ping\n")
            except (OSError, RuntimeError):
                return
            try:
                pong = await asyncio.wait_for(self._ready.readline(), HEALTH_TIMEOUT)
            except TimeoutError:
                self._retire(
                    f"stopped answering health checks for {HEALTH_TIMEOUT:g} s "
                    "(does a handler block the event loop, e.g. time.sleep?)"
                )
                self._abandon_calls()
                return
            if not pong:
                return  # it exited: watch_exit reports that
            rss = resident_bytes(self.process.pid)
            if rss is not None:
                self.rss_bytes = rss
                over = rss > RSS_WARNING_BYTES
                if abs(rss - reported) >= _MEMORY_REPORT_STEP or (over and not warned):
                    reported = rss
                    hooks.event(
                        GenerationMemory(
                            self.generation, rss, over and not warned, RSS_WARNING_BYTES
                        )
                    )
                    warned = warned or over
            await asyncio.sleep(HEALTH_INTERVAL)

    def _abandon_calls(self) -> None:
        """A blocked loop answers none of the calls it holds before their deadline: take
        them back (:class:`BackendGone`, ``may_have_run``) so the handover can send them
        to the replacement within their deadline, as it does a dead worker's. The oldest
        is the suspect (the server takes calls in order; the others waited behind it)."""
        oldest = min(self._calls, key=self._calls.__getitem__, default=None)
        for task in self._calls:
            self._abandoned[task] = task is oldest
            task.cancel()

    async def _gone(self) -> bool:
        """After a dropped connection: is the worker exiting or dead (so the call may go
        to the next one)? Waits briefly for a dying process to be reaped."""
        if self._stopping or self._exiting:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.process.wait()), EXIT_WAIT)
        return self.process.returncode is not None

    async def start_app(self, spec: str, generation: int, hooks: Hooks) -> None:
        """Load APP; :class:`BackendStartError` carries the traceback when it fails."""
        self.generation = generation
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._tasks.append(asyncio.create_task(self._pump_output(hooks)))
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"app": spec}) + "\n").encode())
        try:
            line = await asyncio.wait_for(self._ready.readline(), STARTUP_TIMEOUT)
        except TimeoutError:
            await self.stop()
            raise BackendStartError(
                f"the app did not start within {STARTUP_TIMEOUT:.0f} s"
            ) from None
        report = json.loads(line) if line.strip() else {"ok": False}
        if not report.get("ok"):
            await self.stop()
            error = report.get("error") or f"the worker exited ({self.process.returncode})\n"
            raise BackendStartError(error)
        self.startup_ms = (loop.time() - started) * 1000
        self._pool = UnixHttpPool(str(self.socket_path))

    async def send(self, request: UpstreamRequest, budget: float) -> UpstreamResponse:
        pool = self._pool
        if pool is None or pool.closed:
            raise BackendGone()
        exiting_before = self._exiting or self._stopping
        task = asyncio.current_task()
        assert task is not None
        self._calls[task] = time.monotonic()
        try:
            answer = await forward_unix(
                pool,
                request,
                budget,
                generation=self.generation,
                who="the app",
                answer_error=self._answer_error,
                disconnected=self._gone,
            )
        except ConnectFailed as error:
            raise BackendGone() from error
        except BackendGone as gone:
            # Closing on purpose, it finished every call it had begun: a call that met a
            # closed connection never ran. A dead worker may have run it.
            raise BackendGone(may_have_run=not exiting_before and not self._exiting) from gone
        except asyncio.CancelledError:
            if task in self._abandoned and task.uncancel() == 0:
                raise BackendGone(may_have_run=True, suspect=self._abandoned[task]) from None
            raise
        finally:
            self._calls.pop(task, None)
            self._abandoned.pop(task, None)
        return answer

    def _answer_error(self, headers: Mapping[str, str], body: bytes) -> str | None:
        if headers.get(_ERROR_HEADER) == "handler-exit":
            self._retire("is exiting: a handler called sys.exit() or raised KeyboardInterrupt")
        return handler_traceback(headers, body)

    async def stop(self) -> None:
        self._stopping = True
        if self._pool is not None:
            await self._pool.close()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            await wait_or_kill(self.process, STOP_GRACE)
        if self.process.stdin is not None:
            self.process.stdin.close()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


class AppUpstream:
    """Upstream: the user's aiohttp app (``module[:attr]``), reloadable without a lost call."""

    def __init__(
        self,
        app: str,
        *,
        cwd: Path | None = None,
        hooks: Hooks | None = None,
        keep_spare: bool = True,
        retry_lost_calls: bool = True,
    ) -> None:
        """``keep_spare=False`` (replay, which never reloads): no spare worker waits beside
        the serving one; a replacement (after a crash) then starts from scratch.
        ``retry_lost_calls``: see :class:`~webhook_dev.serving.upstream.Handover`."""
        self.app = app
        self.keep_spare = keep_spare
        self.cwd = (cwd or Path.cwd()).resolve()
        self.hooks = hooks or Hooks()
        self._handover: Handover[WorkerProcess] = Handover(
            self._start_generation,
            self.hooks,
            kind=GenerationKind.APP_WORKER,
            retry_lost_calls=retry_lost_calls,
        )
        self._socket_dir: Path | None = None
        self._spare: asyncio.Task[WorkerProcess] | None = None
        self._spawned = 0

    @property
    def generation(self) -> int | None:
        return self._handover.generation

    async def start(self, *, require_ready: bool = False) -> None:
        """Start the first generation. ``require_ready``: raise :class:`UsageError` if it fails.

        Without it (``serve``), a failing app leaves the stack up, answering 503 with the
        error, until a save fixes it.
        """
        check_app_spec(self.app, self.cwd)
        self._socket_dir = Path(tempfile.mkdtemp(prefix="webhook-dev-"))
        await self._handover.reload(f"starting {self.app}")
        if require_ready and self._handover.generation is None:
            await self.close()
            raise UsageError(f"APP {self.app} did not start:\n{self._handover.last_error}")

    async def close(self) -> None:
        await self._handover.close()
        if self._spare is not None:
            spare = self._spare
            self._spare = None
            with contextlib.suppress(Exception):
                await (await spare).stop()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    async def send(self, request: UpstreamRequest, deadline: float) -> UpstreamResponse:
        return await self._handover.send(request, deadline)

    async def reload(self, reason: str) -> None:
        await self._handover.reload(reason)

    def request_reload(self, reason: str) -> None:
        self._handover.request_reload(reason)

    async def _start_generation(self, generation: int) -> WorkerProcess:
        worker = await self._take_spare()
        try:
            await worker.start_app(self.app, generation, self.hooks)
        finally:
            if self.keep_spare:
                self._spare = asyncio.create_task(self._spawn())
        worker.watch_exit(self._handover.backend_exited)
        worker.watch_health(self._replace_worker, self.hooks)
        return worker

    def _replace_worker(self, worker: WorkerProcess, why: str) -> None:
        self._handover.replace_backend(worker, why)

    @property
    def worker_rss_bytes(self) -> int | None:
        """The serving worker's resident memory at the last health check."""
        current = self._handover.current
        return current.rss_bytes if current is not None else None

    async def _take_spare(self) -> WorkerProcess:
        spare, self._spare = self._spare, None
        if spare is not None:
            with contextlib.suppress(Exception):
                worker = await spare
                if worker.process.returncode is None:
                    return worker
        return await self._spawn()

    async def _spawn(self) -> WorkerProcess:
        assert self._socket_dir is not None
        self._spawned += 1
        return await WorkerProcess.spawn(self.cwd, self._socket_dir / f"w{self._spawned}.sock")
