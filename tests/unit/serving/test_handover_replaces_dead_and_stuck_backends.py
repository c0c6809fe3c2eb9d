"""A backend that dies or stops answering costs only its own call (issue 15, finding 4):
Handover's part, with in-memory backends (no processes)."""

from __future__ import annotations

import asyncio

from webhook_dev.reviews.exchange import GenerationExited, Hooks
from webhook_dev.serving.upstream import BackendGone, Handover, UpstreamRequest, UpstreamResponse

REQUEST = UpstreamRequest("/mutate", b"{}", {})
KILLER = UpstreamRequest("/kill", b"{}", {})


class Mortal:
    """A backend that dies (dropping every call in flight) when it receives ``KILLER``."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.pid: int | None = None
        self.startup_ms = 0.0
        self.dead = False
        self.died = asyncio.Event()
        self.handover: Handover[Mortal] | None = None

    @property
    def alive(self) -> bool:
        return not self.dead

    async def send(self, request: UpstreamRequest, budget: float) -> UpstreamResponse:
        if self.dead:
            raise BackendGone()
        if request.path == "/kill":
            self.dead = True
            self.died.set()
            assert self.handover is not None
            self.handover.backend_exited(self, 1)
            raise BackendGone(may_have_run=True)
        waiter = asyncio.ensure_future(self.died.wait())
        await asyncio.wait([waiter], timeout=0.05)
        if self.dead:
            raise BackendGone(may_have_run=True)
        return UpstreamResponse(200, str(self.generation).encode(), generation=self.generation)

    async def stop(self) -> None:
        self.dead = True


class Events:
    def __init__(self) -> None:
        self.events: list[object] = []

    def on_event(self, event: object) -> None:
        self.events.append(event)


async def test_calls_a_dead_backend_dropped_are_retried_and_the_killer_fails_alone() -> None:
    events = Events()
    backends: list[Mortal] = []
    handover: Handover[Mortal]

    async def start(generation: int) -> Mortal:
        backend = Mortal(generation)
        backend.handover = handover
        backends.append(backend)
        return backend

    handover = Handover(start, Hooks([events]))
    await handover.reload("start")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    calls = [asyncio.create_task(handover.send(REQUEST, deadline)) for _ in range(8)]
    await asyncio.sleep(0.01)
    killer = await handover.send(KILLER, deadline)
    answers = await asyncio.gather(*calls)
    assert [answer.status for answer in answers] == [200] * 8
    assert killer.status == 502  # it killed the retry's backend too, and no more
    assert len(backends) <= 3
    exits = [event for event in events.events if isinstance(event, GenerationExited)]
    assert exits and exits[0].reason == "exited (1)"
    await handover.close()


async def test_a_stuck_backend_is_replaced_once_with_the_reason_said() -> None:
    events = Events()
    backends: list[Mortal] = []

    async def start(generation: int) -> Mortal:
        backends.append(Mortal(generation))
        return backends[-1]

    handover: Handover[Mortal] = Handover(start, Hooks([events]))
    await handover.reload("start")
    first = backends[0]
    first.dead = True  # no longer alive: what a failed health check sets
    handover.replace_backend(first, "stopped answering health checks for 3 s")
    handover.replace_backend(first, "stopped answering health checks for 3 s")
    answer = await handover.send(REQUEST, asyncio.get_running_loop().time() + 10)
    assert answer.status == 200 and answer.generation == 2
    reasons = [e.reason for e in events.events if isinstance(e, GenerationExited)]
    assert reasons == ["stopped answering health checks for 3 s"]
    await handover.close()


class Unreaped:
    """A backend that died but whose exit is not noticed yet: it refuses connections
    (never ran the call) while still ``alive``, until its death is reported."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.pid: int | None = None
        self.startup_ms = 0.0
        self.dead = generation == 1
        self.reported = False
        self.attempts = 0

    @property
    def alive(self) -> bool:
        return not self.reported

    async def send(self, request: UpstreamRequest, budget: float) -> UpstreamResponse:
        self.attempts += 1
        if self.dead:
            raise BackendGone()  # connection refused: the call never reached it
        return UpstreamResponse(200, str(self.generation).encode(), generation=self.generation)

    async def stop(self) -> None:
        self.reported = True


async def test_a_call_waits_for_a_dead_backends_exit_to_be_noticed_instead_of_failing() -> None:
    """On a loaded machine a dead worker's exit is reaped later than three retries take:
    the call waits for it (and the next generation), it does not burn its attempts."""
    backends: list[Unreaped] = []

    async def start(generation: int) -> Unreaped:
        backend = Unreaped(generation)
        backends.append(backend)
        return backend

    handover: Handover[Unreaped] = Handover(start, Hooks())
    await handover.reload("start")
    loop = asyncio.get_running_loop()
    call = asyncio.create_task(handover.send(REQUEST, loop.time() + 10))
    await asyncio.sleep(0.05)  # the call met the dead backend and waits
    assert not call.done()
    backends[0].reported = True
    handover.backend_exited(backends[0], 1)  # the exit is noticed: a new generation
    answer = await call
    assert answer.status == 200 and answer.body == b"2"
    assert backends[0].attempts == 1


async def test_without_retry_lost_calls_a_call_a_dead_backend_may_have_run_fails_saying_why() -> (
    None
):
    """``up`` on a webhook whose sideEffects is not None (issue 23, finding 5)."""
    handover: Handover[Mortal]

    async def start(generation: int) -> Mortal:
        backend = Mortal(generation)
        backend.handover = handover
        return backend

    handover = Handover(start, Hooks([]), retry_lost_calls=False)
    await handover.reload("start")
    deadline = asyncio.get_running_loop().time() + 10
    call = asyncio.create_task(handover.send(REQUEST, deadline))
    await asyncio.sleep(0.01)
    await handover.send(KILLER, deadline)
    answer = await call
    assert answer.status == 502
    assert answer.error is not None and "not sent again" in answer.error
    assert "sideEffects: None" in answer.error
    assert (await handover.send(REQUEST, deadline)).status == 200  # the next one serves
    await handover.close()
