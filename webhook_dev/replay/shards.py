"""``replay --jobs N``: the replay sharded over processes, the report still in order.

Why processes: one replayer decodes each line, checks and sends the request, reads and
compares the answer; that is CPU in one Python process, and the workers sat idle
waiting for it (``docs/benchmarks.md``). So ``--jobs N`` starts up to one *shard* a CPU
(``python -m webhook_dev.replay.shard_worker``), each with its own target (an ``--app``
worker of its own, or a client of the ``--url``) and ``N / shards`` calls in flight.

This process only reads lines (raw bytes: it never decodes one unless ``--sample`` with
``--where`` must pick among them), sends them in batches of :data:`BATCH` over each
shard's stdin, and reads back each batch's small :class:`~webhook_dev.replay.outcome.
Outcome` records, which it emits in the recording's order. At most :data:`WINDOW`
batches are out per shard, so memory is bounded whatever the file's size.

Frames both ways are a 4-byte length and a pickle (the other end is our own child).
A shard's first answer is ``("ready", None)`` or ``("error", (message, hint))`` when
its target could not start (the app fails to import: exit 2 like without shards).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import struct
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from webhook_dev.errors import RecordingError, UsageError
from webhook_dev.replay.batch import Skipped
from webhook_dev.replay.outcome import Outcome
from webhook_dev.serving.upstreams.child_process import wait_or_kill

BATCH = 32
WINDOW = 2
STOP_GRACE = 10.0
_LENGTH = struct.Struct("!I")

RawItem = tuple[str, int, bytes]  # (file, line number, the line's bytes)
Record = Outcome | Skipped | None  # None: the shard's --where filter dropped the line


@dataclass(frozen=True)
class ShardConfig:
    """What every shard needs to replay: its target, and how to replay and report."""

    app: str | None
    url: str | None
    cacert: str | None
    cwd: str
    jobs: int
    idempotence: bool
    where: str
    as_json: bool
    ignore: tuple[str, ...] = ()  # --ignore's JSON pointers, checked by the command
    # ``replay --policy``: the policy evaluator and the files its shard starts it with
    # (instead of a target), and which configuration's webhook answered.
    policy_binary: str | None = None
    policies: tuple[str, ...] = ()
    side: str | None = None


def frame(value: Any) -> bytes:
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next frame's value, or ``EOFError`` when the other end closed."""
    try:
        head = await reader.readexactly(_LENGTH.size)
        return pickle.loads(await reader.readexactly(_LENGTH.unpack(head)[0]))
    except asyncio.IncompleteReadError:
        raise EOFError from None


def shard_count(jobs: int) -> int:
    """Shards for ``--jobs``: one a CPU at most, and none (replay in this process) for 1."""
    return max(1, min(jobs, os.cpu_count() or 1)) if jobs > 1 else 1


class _Shard:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.out = 0  # batches sent and not answered

    async def send(self, value: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(frame(value))
        await self.process.stdin.drain()

    async def receive(self) -> Any:
        assert self.process.stdout is not None
        return await read_frame(self.process.stdout)

    async def stop(self) -> None:
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()  # EOF: the shard finishes, stops its target and exits
        await wait_or_kill(self.process, STOP_GRACE)


async def replay_sharded(
    items: Iterator[RawItem | Skipped], config: ShardConfig, shards: int
) -> AsyncIterator[Outcome | Skipped]:
    """Replay ``items`` over ``shards`` processes; outcomes (and skipped lines) come out
    in the items' order.

    :raises UsageError: a shard's target did not start (the message is the shard's).
    :raises RecordingError: a shard stopped in the middle (its stderr says why).
    """
    started = await asyncio.gather(*(_start(config) for _ in range(max(1, shards))))
    running = list(started)
    answers: asyncio.Queue[tuple[_Shard, Any]] = asyncio.Queue()
    readers: list[asyncio.Task[None]] = []
    try:
        try:
            ready = await asyncio.gather(*(shard.receive() for shard in running))
        except EOFError:
            raise RecordingError("a replay shard did not start; its error is above") from None
        for kind, detail in ready:
            if kind == "error":
                message, hint = detail
                raise UsageError(message, hint=hint)

        async def read_answers(shard: _Shard) -> None:
            while True:
                try:
                    answer = await shard.receive()
                except EOFError:
                    await answers.put((shard, None))
                    return
                await answers.put((shard, answer))

        readers = [asyncio.ensure_future(read_answers(shard)) for shard in running]
        pending: dict[int, Record] = {}
        source = iter(items)
        sent = emitted = 0
        exhausted = False
        while True:
            for shard in sorted(running, key=lambda s: s.out):
                while not exhausted and shard.out < WINDOW:
                    batch: list[tuple[int, str, int, bytes]] = []
                    for item in source:
                        if isinstance(item, Skipped):
                            pending[sent] = item
                        else:
                            batch.append((sent, *item))
                        sent += 1
                        if len(batch) >= BATCH:
                            break
                    else:
                        exhausted = True
                    if batch:
                        shard.out += 1
                        await shard.send(batch)
            while emitted in pending:
                record = pending.pop(emitted)
                emitted += 1
                if record is not None:
                    yield record
            if exhausted and emitted == sent:
                return
            shard, answer = await answers.get()
            if answer is None:
                raise RecordingError(
                    f"a replay shard stopped (exit {await shard.process.wait()}); "
                    "its error is above"
                )
            shard.out -= 1
            for number, record in answer:
                pending[number] = record
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*(shard.stop() for shard in started), return_exceptions=True)


async def _start(config: ShardConfig) -> _Shard:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "webhook_dev.replay.shard_worker",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=config.cwd,
        limit=1 << 24,
    )
    shard = _Shard(process)
    await shard.send(config)
    return shard
