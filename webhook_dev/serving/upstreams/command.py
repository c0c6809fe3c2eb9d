"""The user's webhook as a command we run and restart: the ``--upstream URL --run CMD`` upstream.

Any language: CMD (``go run ./cmd/webhook --port 9443``, ``node server.js``) listens at
the ``--upstream`` URL, and each generation is one run of it. Unlike the aiohttp workers,
two generations cannot overlap — they want the same port — so a restart is:

1. with ``--build``: build while the old process keeps serving; a failed build changes
   nothing (the old process answers, the build output is printed);
2. take the old process out of service, let its calls finish, stop it (SIGTERM to its
   process group, SIGKILL after a grace period);
3. start CMD and poll-connect until the URL accepts connections: that is "ready".

Calls that arrive during steps 2 and 3 are held by the
:class:`~webhook_dev.serving.upstream.Handover`
until the new process is ready, at most until shortly before their own deadline (the
apiserver's ``?timeout=``); then they get a 503 that says why. Without ``--build`` a
compile error surfaces in step 3, when the old process is already gone.

While a generation starts — from the start of ``--build`` (or of CMD) until CMD listens or
fails — files modified are taken as CMD's own output (``make run`` runs ``make generate``
first): :meth:`CommandUpstream.wrote_while_starting` tells the reloader so from a file's
modification time (the watcher reports changes up to 0.4 s late). The reloader then does
not restart for them but says which files it passed over, so that a real save in that
window is seen on the console, not lost silently.

Every process runs under :mod:`webhook_dev.serving.upstreams.process_guard`, so none outlives us.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from webhook_dev.errors import UsageError
from webhook_dev.reviews.exchange import GenerationFailed, GenerationKind, Hooks, ReloadStarted
from webhook_dev.serving.upstream import (
    BackendStartError,
    Handover,
    UpstreamRequest,
    UpstreamResponse,
)
from webhook_dev.serving.upstreams.child_process import WatchedChild
from webhook_dev.serving.upstreams.url import UpstreamUrl, UrlBackend

STARTUP_TIMEOUT = 180.0  # `go run` compiles first; a cold build cache is slow on 2 cores
STOP_GRACE = 5.0
READY_POLL_SECONDS = 0.02
OUTPUT_TAIL_LINES = 60


async def spawn_guarded(command: str, cwd: Path) -> asyncio.subprocess.Process:
    """``sh -c command`` under the guard, in a new process group; output merged on stdout."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "webhook_dev.serving.upstreams.process_guard",
        command,
        cwd=cwd,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )


async def stop_group(process: asyncio.subprocess.Process, grace: float = STOP_GRACE) -> None:
    """SIGTERM the process's group, SIGKILL what is left after ``grace``; wait until it is empty.

    Waiting for the whole group matters: the next generation needs the port that a
    grandchild (the binary ``go run`` built) may still hold.
    """
    group = process.pid
    _signal_group(group, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    until = loop.time() + grace
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), grace)
    if not await _group_gone(group, until - loop.time()):
        _signal_group(group, signal.SIGKILL)
        await process.wait()
        await _group_gone(group, grace)


async def _group_gone(group: int, seconds: float) -> bool:
    """Poll (no event tells us) until no process of ``group`` runs, for up to ``seconds``."""
    for _ in range(max(int(seconds / READY_POLL_SECONDS), 1)):
        if not _group_alive(group):
            return True
        await asyncio.sleep(READY_POLL_SECONDS)
    return not _group_alive(group)


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    """Is any process of ``group`` still running? Zombies do not count: they hold no port."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            return True
    return False


class CommandProcess(UrlBackend, WatchedChild):
    """One generation: CMD running under the guard, and the URL it serves."""

    def __init__(
        self, upstream: UpstreamUrl, generation: int, process: asyncio.subprocess.Process
    ) -> None:
        super().__init__(upstream, generation)
        self.process = process
        self.pid = process.pid
        self.output_tail: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def start(
        cls,
        command: str,
        upstream: UpstreamUrl,
        generation: int,
        *,
        cwd: Path,
        hooks: Hooks,
        startup_seconds: float = STARTUP_TIMEOUT,
        hint: str = "",
    ) -> CommandProcess:
        """Start CMD and wait until the URL accepts connections.

        :raises BackendStartError: CMD exited first (its output's tail is the message), or
            did not open the port within ``startup_seconds``.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        process = await spawn_guarded(command, cwd)
        backend = cls(upstream, generation, process)
        backend._tasks.append(asyncio.create_task(backend._pump_output(hooks)))
        try:
            await backend._wait_ready(command, startup_seconds, hint)
        except BaseException:
            await backend.stop()
            raise
        backend.startup_ms = (loop.time() - started) * 1000
        backend.open()
        return backend

    async def _wait_ready(self, command: str, startup_seconds: float, hint: str) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        upstream, process = self.upstream, self.process
        address = f"{upstream.host}:{upstream.port}"
        while not await upstream.accepts_connections():
            if process.returncode is not None:
                # let the pump read the last lines (the compiler's errors) first
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._tasks[0]), 1.0)
                tail = "\n".join(self.output_tail)
                raise BackendStartError(
                    f"`{command}` exited ({process.returncode}) before {address} accepted "
                    f"connections{hint}:\n{tail}\n"
                )
            if loop.time() - started > startup_seconds:
                raise BackendStartError(
                    f"`{command}` did not listen on {address} within {startup_seconds:.0f} s "
                    "(does it use the port of --upstream?)\n"
                )
            await asyncio.sleep(READY_POLL_SECONDS)

    @property
    def alive(self) -> bool:
        return self.still_there() and super().alive

    def still_there(self) -> bool:
        return self.process.returncode is None and not self._stopping

    def _remember_output(self, text: str) -> None:
        self.output_tail.append(text)

    async def stop(self) -> None:
        self._stopping = True
        await self.close()
        await stop_group(self.process)
        # let the last output lines through before the pump goes
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._tasks[:1]), 1.0)
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()


async def run_build(command: str, cwd: Path) -> tuple[bool, str]:
    """Run ``--build``; returns whether it succeeded and its output."""
    process = await spawn_guarded(command, cwd)
    try:
        output, _ = await process.communicate()
    except asyncio.CancelledError:
        await stop_group(process)
        raise
    return process.returncode == 0, output.decode(errors="replace")


class CommandUpstream:
    """Upstream: ``--run CMD`` serving ``--upstream URL``, restarted on save without a lost call.

    :param build: ``--build CMD``, run before each (re)start; the old process keeps
        serving while it runs and when it fails.
    """

    def __init__(
        self,
        upstream: UpstreamUrl,
        run: str,
        *,
        build: str | None = None,
        cwd: Path | None = None,
        hooks: Hooks | None = None,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        self.upstream = upstream
        self.run = run
        self.build = build
        self.cwd = (cwd or Path.cwd()).resolve()
        self.hooks = hooks or Hooks()
        self.startup_timeout = startup_timeout
        self._handover: Handover[CommandProcess] = Handover(
            self._start_generation,
            self.hooks,
            kind=GenerationKind.COMMAND,
            unavailable=f"webhook-dev: `{run}` is not serving {upstream.url} "
            "(see webhook-dev's console)\n".encode(),
        )
        self._pending_reason: str | None = None
        self._build_task: asyncio.Task[None] | None = None
        self._built_once = False
        # when the last start began and ended (time.time(); ended is +inf while it runs)
        self._own_writes: tuple[float, float] = (math.inf, -math.inf)  # none yet

    def wrote_while_starting(self, modified: float) -> str | None:
        """The command, if a file modified at ``modified`` (``time.time()``) was written while
        it built or started — most likely by it (code generation, a formatter) — else ``None``.
        """
        began, ended = self._own_writes
        if began <= modified <= ended:
            return self.run if self.build is None else f"{self.build}` / `{self.run}"
        return None

    @contextlib.contextmanager
    def _starting(self) -> Iterator[None]:
        """The window of the command's own writes, around a build or a start.

        Nested (a start within the build's window), they make one window, from the build's
        start until the command listens or fails: the inner end stands. The outer one
        ends later — once the handover has published the new generation as ready — and a
        save the developer made on seeing "ready" must not fall into the window.
        """
        began = self._own_writes[0] if self._own_writes[1] == math.inf else time.time()
        self._own_writes = (began, math.inf)
        try:
            yield
        finally:
            ended = self._own_writes[1]
            self._own_writes = (began, time.time() if ended == math.inf else ended)

    @property
    def generation(self) -> int | None:
        return self._handover.generation

    async def start(self, *, require_ready: bool = False) -> None:
        """Build (with ``--build``) and start CMD. ``require_ready``: wait, and raise if it fails.

        Without it (``serve``, ``up``) this returns at once: the stack serves while CMD
        builds and starts (calls wait for it, within their deadline), and a failing start
        leaves it up, answering 503 with the error, until a save fixes it.

        :raises UsageError: something already listens at the URL before CMD started.
        """
        if await self.upstream.accepts_connections():
            raise UsageError(
                f"{self.upstream.host}:{self.upstream.port} already accepts connections, "
                f"before `{self.run}` started: is a copy of your webhook still running?",
                hint="stop it, or drop --run to forward to the one that runs",
            )
        first = f"starting `{self.run}`" if self.build is None else f"building `{self.build}`"
        if not require_ready:
            # serve at once: calls wait for the first process like for any restart
            self.request_reload(first)
            return
        await self.reload(first)
        if self._handover.generation is None:
            await self.close()
            raise UsageError(f"`{self.run}` did not start:\n{self._handover.last_error}")

    async def close(self) -> None:
        if self._build_task is not None:
            self._build_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._build_task
        await self._handover.close()

    async def send(self, request: UpstreamRequest, deadline: float) -> UpstreamResponse:
        return await self._handover.send(request, deadline)

    def request_reload(self, reason: str) -> None:
        """Restart on a save; with ``--build``, build first and coalesce saves meanwhile."""
        if self.build is None:
            self._handover.request_reload(reason)
            return
        self._pending_reason = reason
        if self._build_task is None or self._build_task.done():
            self._build_task = asyncio.create_task(self._build_loop())

    async def reload(self, reason: str) -> None:
        self.request_reload(reason)
        if self.build is None:
            await self._handover.reload(reason)
        elif self._build_task is not None:
            await asyncio.shield(self._build_task)

    async def _build_loop(self) -> None:
        while self._pending_reason is not None:
            reason, self._pending_reason = self._pending_reason, None
            await self._build_and_swap(reason)

    async def _build_and_swap(self, reason: str) -> None:
        assert self.build is not None
        self.hooks.event(ReloadStarted(reason, first=not self._built_once))
        self._built_once = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        with self._starting():  # the build may generate code too (`make build`)
            ok, output = await run_build(self.build, self.cwd)
            if ok:
                seconds = loop.time() - started
                await self._handover.reload(f"built in {seconds:.1f} s; restarting `{self.run}`")
                return
        error = f"`{self.build}` failed:\n{output}"
        self._handover.last_error = error
        serving = self._handover.generation
        upcoming = (self._handover.current.generation if self._handover.current else 0) + 1
        self.hooks.event(GenerationFailed(upcoming, error, serving, GenerationKind.COMMAND))

    async def _start_generation(self, generation: int) -> CommandProcess:
        await self._handover.stop_current()
        hint = (
            ""
            if self.build is not None
            else " (the old process is already stopped; --build CMD keeps it serving "
            "until a build succeeds)"
        )
        with self._starting():
            backend = await CommandProcess.start(
                self.run,
                self.upstream,
                generation,
                cwd=self.cwd,
                hooks=self.hooks,
                startup_seconds=self.startup_timeout,
                hint=hint,
            )
        backend.watch_exit(self._handover.backend_exited)
        return backend
