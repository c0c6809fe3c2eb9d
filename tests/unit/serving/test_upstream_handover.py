"""The zero-drop promise of Handover, with in-memory backends (no processes)."""

from __future__ import annotations

import asyncio

from webhook_dev.reviews.exchange import GenerationFailed, Hooks
from webhook_dev.serving.upstream import (
    BackendStartError,
    Handover,
    UpstreamRequest,
    UpstreamResponse,
)

REQUEST = UpstreamRequest("/mutate", b"{}", {})


class FakeBackend:
    def __init__(self, generation: int, answer_after: asyncio.Event | None = None) -> None:
        self.generation = generation
        self.pid: int | None = None
        self.startup_ms = 0.0
        self.stopped = False
        self.answer_after = answer_after
        self.calls = 0
        self.stopped_with_calls_in_flight = False
        self._in_flight = 0

    @property
    def alive(self) -> bool:
        return not self.stopped

    async def send(self, request: UpstreamRequest, budget: float) -> UpstreamResponse:
        self.calls += 1
        self._in_flight += 1
        try:
            if self.answer_after is not None:
                await self.answer_after.wait()
            return UpstreamResponse(200, str(self.generation).encode(), generation=self.generation)
        finally:
            self._in_flight -= 1

    async def stop(self) -> None:
        self.stopped_with_calls_in_flight = self._in_flight > 0
        self.stopped = True


class Starter:
    """Starts FakeBackends; each start waits for ``gate`` and may be told to fail."""

    def __init__(self) -> None:
        self.backends: list[FakeBackend] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next = False
        self.slow_answers: asyncio.Event | None = None

    async def __call__(self, generation: int) -> FakeBackend:
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise BackendStartError("SyntaxError: invalid syntax")
        backend = FakeBackend(generation, self.slow_answers)
        self.backends.append(backend)
        return backend


class Events:
    def __init__(self) -> None:
        self.events: list[object] = []

    def on_event(self, event: object) -> None:
        self.events.append(event)


def deadline(seconds: float = 30.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_a_call_during_a_reload_waits_and_gets_the_new_generation() -> None:
    starter = Starter()
    handover = Handover(starter, Hooks())
    await handover.reload("start")
    starter.gate.clear()
    handover.request_reload("changed app.py")
    call = asyncio.create_task(handover.send(REQUEST, deadline()))
    await asyncio.sleep(0.05)
    assert not call.done()
    starter.gate.set()
    assert (await call).body == b"2"
    await handover.close()


async def test_a_failed_start_leaves_the_old_generation_serving() -> None:
    starter = Starter()
    events = Events()
    handover = Handover(starter, Hooks([events]))
    await handover.reload("start")
    starter.fail_next = True
    await handover.reload("changed app.py")
    assert (await handover.send(REQUEST, deadline())).body == b"1"
    failed = [e for e in events.events if isinstance(e, GenerationFailed)]
    assert failed and failed[0].still_serving == 1 and "SyntaxError" in failed[0].error
    await handover.close()


async def test_the_old_generation_stops_only_after_its_calls_finish() -> None:
    starter = Starter()
    handover = Handover(starter, Hooks())
    starter.slow_answers = asyncio.Event()
    await handover.reload("start")
    in_flight = asyncio.create_task(handover.send(REQUEST, deadline()))
    await asyncio.sleep(0.05)
    starter.slow_answers = None
    await handover.reload("changed app.py")
    old = starter.backends[0]
    assert not old.stopped
    assert old.answer_after is not None
    old.answer_after.set()
    assert (await in_flight).status == 200
    for _ in range(100):
        if old.stopped:
            break
        await asyncio.sleep(0.01)
    assert old.stopped and not old.stopped_with_calls_in_flight
    await handover.close()


async def test_a_held_call_is_answered_by_the_old_generation_before_its_deadline() -> None:
    starter = Starter()
    handover = Handover(starter, Hooks())
    await handover.reload("start")
    starter.gate.clear()
    handover.request_reload("changed app.py")
    response = await handover.send(REQUEST, deadline(0.6))
    assert response.status == 200 and response.body == b"1"
    starter.gate.set()
    await handover.close()


async def test_with_no_generation_running_a_call_gets_503_naming_the_error() -> None:
    starter = Starter()
    starter.fail_next = True
    handover = Handover(starter, Hooks())
    await handover.reload("start")
    response = await handover.send(REQUEST, deadline(0.5))
    assert response.status == 503
    assert response.error is not None and "SyntaxError" in response.error
    await handover.close()


async def test_a_crashed_generation_is_restarted_and_calls_wait_for_it() -> None:
    starter = Starter()
    handover = Handover(starter, Hooks())
    await handover.reload("start")
    first = starter.backends[0]
    first.stopped = True  # the process died
    handover.backend_exited(first, -9)
    response = await handover.send(REQUEST, deadline())
    assert response.body == b"2"
    await handover.close()


async def test_stop_current_holds_new_calls_until_the_next_generation_serves() -> None:
    starter = Starter()
    handover: Handover[FakeBackend] = Handover(starter, Hooks())
    await handover.reload("first")
    first = starter.backends[0]
    loop = asyncio.get_running_loop()

    async def restart(generation: int) -> FakeBackend:
        await handover.stop_current()  # a fixed port: the old one must go first
        assert first.stopped
        return await starter(generation)

    handover._start_backend = restart
    starter.gate.clear()
    handover.request_reload("save")
    await asyncio.sleep(0)
    call = asyncio.create_task(handover.send(REQUEST, loop.time() + 30))
    await asyncio.sleep(0.05)
    assert not call.done()  # held: nothing serves between the two generations
    starter.gate.set()
    answer = await call
    assert answer.status == 200 and answer.body == b"2"
    await handover.close()
