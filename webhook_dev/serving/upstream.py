"""Where the proxy sends calls, and the zero-drop handover between generations of it.

An :class:`Upstream` answers AdmissionReview POSTs: the user's aiohttp app in worker
processes (``upstreams.app``), a ``--run`` command at a URL (``upstreams.command``), or a
URL alone (``upstreams.url``). Whatever restarts, :class:`Handover` keeps the promise that
no call fails because of a reload:

* a call that arrives while a new generation starts is *held* until it is ready, so it
  sees the new code; held at most until shortly before the call's own deadline (the
  apiserver's ``?timeout=``), after which the old generation — still running — answers;
* a generation that fails to start changes nothing: the old one keeps serving;
* the old generation is stopped only once the calls it is answering have finished;
* with no generation running at all (the first start failed, or it crashed), calls wait
  for one until their deadline, then get a clear 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from webhook_dev.reviews.exchange import (
    GenerationExited,
    GenerationFailed,
    GenerationKind,
    GenerationReady,
    Hooks,
    ReloadStarted,
)

# Time kept back from a held call's deadline for the old generation to answer it.
_RESERVE_SECONDS = 1.0
# Longest wait for an old generation's calls to finish before it is stopped anyway.
_DRAIN_SECONDS = 60.0


@dataclass(frozen=True)
class UpstreamRequest:
    path: str  # path and query, e.g. "/mutate?timeout=10s"
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class UpstreamResponse:
    """What came back. ``error`` explains a failure (a handler's traceback, no worker, ...)."""

    status: int
    body: bytes
    content_type: str = "application/json"
    generation: int | None = None
    error: str | None = None
    elapsed_ms: float | None = None
    wait_ms: float | None = None  # spent waiting for a generation to take the call


class Upstream(Protocol):
    """What the proxy needs from whatever answers the calls."""

    @property
    def generation(self) -> int | None:
        """The generation now answering, ``None`` before the first is ready."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def send(self, request: UpstreamRequest, deadline: float) -> UpstreamResponse:
        """Answer ``request`` by ``deadline`` (``loop.time()`` seconds); never raises."""

    async def reload(self, reason: str) -> None:
        """Start a new generation and switch to it; returns once it is serving or failed."""

    def request_reload(self, reason: str) -> None:
        """Like :meth:`reload` without waiting; saves in quick succession coalesce."""


class BackendStartError(Exception):
    """A new generation could not start; the message is what the user must see (traceback)."""


class BackendGone(Exception):
    """The backend went away: the call can be sent to the next generation.

    ``may_have_run``: the connection dropped because the process died, or it was
    replaced for blocking its event loop, so the app may have run (part of) the call;
    such a call is sent again only where that is safe (``retry_lost_calls``).
    ``suspect`` (by default as ``may_have_run``): it may be the very call that killed or
    blocked the backend, so it is retried once, alone, not until it has taken every
    backend down. Of the calls a blocked worker held, only the oldest is the suspect:
    the others were queued behind it.
    """

    def __init__(self, *, may_have_run: bool = False, suspect: bool | None = None) -> None:
        super().__init__()
        self.may_have_run = may_have_run
        self.suspect = may_have_run if suspect is None else suspect


class Backend(Protocol):
    """One generation: a running worker process, or a ``--run`` command and its URL."""

    generation: int
    pid: int | None  # of the process answering, when there is one
    startup_ms: float

    @property
    def alive(self) -> bool: ...

    async def send(self, request: UpstreamRequest, budget: float) -> UpstreamResponse:
        """Answer within ``budget`` seconds.

        Raises :class:`BackendGone` when the call certainly did not reach the app.
        """

    async def stop(self) -> None: ...


B = TypeVar("B", bound=Backend)


def _not_retried(kind: GenerationKind, generation: int, waited_ns: int) -> UpstreamResponse:
    message = (
        f"{kind.value} {generation} was lost while it may have been running this call; "
        "not sent again, as the webhook does not declare sideEffects: None"
    )
    return UpstreamResponse(
        502, f"webhook-dev: {message}\n".encode(), "text/plain", error=message,
        wait_ms=waited_ns / 1e6,
    )  # fmt: skip


class Handover(Generic[B]):
    """Holds the current backend, starts the next one, and moves calls over without loss."""

    def __init__(
        self,
        start_backend: Callable[[int], Awaitable[B]],
        hooks: Hooks,
        *,
        kind: GenerationKind = GenerationKind.APP_WORKER,
        unavailable: bytes = b"webhook-dev: no worker is running the app (see its console)\n",
        retry_lost_calls: bool = True,
    ) -> None:
        """``retry_lost_calls``: send a call that may have begun running in a backend
        that was lost (it died, or was replaced for blocking) once more, to the next one;
        without it such a call fails at once with a 502 saying why (``up`` clears it
        unless the webhook declares ``sideEffects: None``)."""
        self._start_backend = start_backend
        self._hooks = hooks
        self.kind = kind
        self._unavailable = unavailable
        self._current: B | None = None
        self._last_generation = 0
        self._inflight: dict[int, int] = {}
        self._changed = asyncio.Event()
        self._reloading = False
        self._pending_reason: str | None = None
        self._reload_task: asyncio.Task[None] | None = None
        self._retiring: dict[asyncio.Task[None], B] = {}
        self._closed = False
        self._replaced: set[B] = set()
        self._suspects = asyncio.Lock()
        self.retry_lost_calls = retry_lost_calls
        self.last_error: str | None = None

    @property
    def current(self) -> B | None:
        return self._current

    @property
    def generation(self) -> int | None:
        current = self._current
        return current.generation if current is not None and current.alive else None

    # --- reloads ----------------------------------------------------------------------

    def request_reload(self, reason: str) -> None:
        if self._closed:
            return
        self._pending_reason = reason
        self._reloading = True  # calls arriving from now on wait for the new generation
        if self._reload_task is None or self._reload_task.done():
            self._reload_task = asyncio.create_task(self._reload_loop())

    async def reload(self, reason: str) -> None:
        self.request_reload(reason)
        task = self._reload_task
        if task is not None:
            await asyncio.shield(task)

    async def _reload_loop(self) -> None:
        while self._pending_reason is not None and not self._closed:
            reason, self._pending_reason = self._pending_reason, None
            self._hooks.event(ReloadStarted(reason, first=self._last_generation == 0))
            self._last_generation += 1
            generation = self._last_generation
            try:
                backend = await self._start_backend(generation)
            except BackendStartError as error:
                self.last_error = str(error)
                serving = self.generation
                self._hooks.event(GenerationFailed(generation, str(error), serving, self.kind))
                continue
            if self._closed:
                await backend.stop()
                break
            old, self._current = self._current, backend
            if old is not None:
                self._replaced.discard(old)
            self.last_error = None
            self._hooks.event(
                GenerationReady(generation, backend.pid, backend.startup_ms, self.kind)
            )
            self._inflight.setdefault(generation, 0)
            if old is not None:
                self._retire(old)
        self._reloading = False
        self._notify()

    def _retire(self, old: B) -> None:
        task = asyncio.create_task(self._drain_and_stop(old))
        self._retiring[task] = old
        task.add_done_callback(lambda done: self._retiring.pop(done, None))

    async def _drain_and_stop(self, old: B) -> None:
        loop = asyncio.get_running_loop()
        until = loop.time() + _DRAIN_SECONDS
        while self._inflight.get(old.generation, 0) > 0 and loop.time() < until:
            await self._wait_changed(until - loop.time())
        self._inflight.pop(old.generation, None)
        await old.stop()

    async def stop_current(self) -> None:
        """Take the serving backend out of service, let its calls finish, then stop it.

        For backends that cannot run side by side (a ``--run`` command bound to one fixed
        port): a starter calls this just before starting the next one. Calls arriving from
        now on wait for the next generation, within their deadline.
        """
        old, self._current = self._current, None
        if old is not None:
            self._notify()
            await self._drain_and_stop(old)

    def backend_exited(self, backend: B, returncode: int | None) -> None:
        """Called by a backend that stopped on its own: restart it if it was serving."""
        self.replace_backend(backend, f"exited ({returncode})", returncode=returncode)

    def replace_backend(self, backend: B, reason: str, *, returncode: int | None = None) -> None:
        """Start the next generation in place of ``backend``, which is exiting or stuck
        (it must no longer count as ``alive``); says ``reason`` once on the console."""
        if self._closed or backend is not self._current or backend in self._replaced:
            return
        self._replaced.add(backend)
        self._hooks.event(
            GenerationExited(backend.generation, returncode, self.kind, reason=reason)
        )
        self._notify()
        self.request_reload(f"{self.kind.value} {backend.generation} {reason}")

    # --- calls ------------------------------------------------------------------------

    async def send(self, request: UpstreamRequest, deadline: float) -> UpstreamResponse:
        loop = asyncio.get_running_loop()
        waited_ns = 0
        retried_after_death = False
        lost_by: B | None = None  # the backend that lost this call's previous attempt
        for _attempt in range(3):
            acquire_started = time.perf_counter_ns()
            if lost_by is not None:
                await self._wait_replaced(lost_by, deadline)
            backend = await self._acquire(deadline)
            waited_ns += time.perf_counter_ns() - acquire_started
            if backend is None:
                detail = f":\n{self.last_error}" if self.last_error else ""
                return UpstreamResponse(
                    503,
                    self._unavailable,
                    "text/plain",
                    error=f"no {self.kind.value} could answer before the call's deadline{detail}",
                    wait_ms=waited_ns / 1e6,
                )
            generation = backend.generation
            self._inflight[generation] = self._inflight.get(generation, 0) + 1
            try:
                budget = max(deadline - loop.time(), 0.5)
                if retried_after_death:
                    answer = await self._send_suspect(backend, request, budget)
                else:
                    answer = await backend.send(request, budget)
                return dataclasses.replace(answer, wait_ms=waited_ns / 1e6)
            except BackendGone as lost:
                if backend is self._current and not backend.alive:
                    self._notify()
                if lost.may_have_run and not self.retry_lost_calls:
                    return _not_retried(self.kind, backend.generation, waited_ns)
                if lost.suspect:
                    if retried_after_death:
                        break
                    retried_after_death = True
                lost_by = backend
                continue
            finally:
                self._inflight[generation] = self._inflight.get(generation, 1) - 1
                if self._inflight[generation] <= 0:
                    self._notify()
        gone = f"the {self.kind.value} went away"
        return UpstreamResponse(
            502,
            f"webhook-dev: {gone}\n".encode(),
            "text/plain",
            error=gone,
            wait_ms=waited_ns / 1e6,
        )

    async def _send_suspect(
        self, backend: B, request: UpstreamRequest, budget: float
    ) -> UpstreamResponse:
        """Send a call that was in flight when a backend died — perhaps the call that
        killed it — alone: if it kills this backend too, it takes no retried call along
        (calls that were not suspects get their own retry)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + budget
        try:
            async with asyncio.timeout(budget):
                await self._suspects.acquire()
        except TimeoutError:
            message = f"the {self.kind.value} died, and the retry found no time left"
            return UpstreamResponse(504, f"webhook-dev: {message}\n".encode(), error=message)
        try:
            return await backend.send(request, max(until - loop.time(), 0.1))
        finally:
            self._suspects.release()

    async def _wait_replaced(self, backend: B, deadline: float) -> None:
        """After ``backend`` lost a call: wait, within the call's deadline, until calls
        no longer go to it. A worker that just died is still ``alive`` until its exit is
        reaped — on a loaded machine longer than a retry takes — and a retry sent to it
        meets a socket nobody accepts on, burning the call's attempts in a moment."""
        loop = asyncio.get_running_loop()
        while self._current is backend and backend.alive and not self._closed:
            remaining = deadline - loop.time() - 0.2
            if remaining <= 0:
                return
            await self._wait_changed(remaining)

    async def _acquire(self, deadline: float) -> B | None:
        loop = asyncio.get_running_loop()
        if self._reloading:
            remaining = deadline - loop.time()
            hold_until = deadline - min(_RESERVE_SECONDS, remaining / 2)
            while self._reloading and loop.time() < hold_until:
                await self._wait_changed(hold_until - loop.time())
        while True:
            current = self._current
            if current is not None and current.alive:
                return current
            remaining = deadline - loop.time() - 0.2
            if remaining <= 0 or self._closed:
                return None
            await self._wait_changed(remaining)

    async def _wait_changed(self, seconds: float) -> None:
        if seconds <= 0:
            return
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), seconds)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- shutdown ---------------------------------------------------------------------

    async def close(self) -> None:
        self._closed = True
        if self._reload_task is not None:
            self._reload_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reload_task
        backends = list(self._retiring.values())
        for task in list(self._retiring):
            task.cancel()
        if self._current is not None:
            backends.append(self._current)
        self._current = None
        self._notify()
        for backend in backends:
            await backend.stop()
