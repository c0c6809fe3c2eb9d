"""One shard of ``replay --jobs N`` (started by :mod:`~webhook_dev.replay.shards`).

Reads a :class:`~webhook_dev.replay.shards.ShardConfig`, starts its target, answers
``ready`` (or the error), then for each batch of raw lines on stdin decodes, filters
(``--where``), replays with ``jobs`` calls in flight and writes the batch's records back
in one frame. Batches overlap, so the target never waits for a batch's slowest call.
Ends at EOF on stdin (the replay is done, or its process died), stopping its target.
Ctrl-C is left to the replay process, which then closes our stdin.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from webhook_dev.errors import ReviewError, UsageError
from webhook_dev.recording import query, stream
from webhook_dev.recording.redaction_key import redaction_key
from webhook_dev.recording.summary import summary
from webhook_dev.replay.batch import Skipped
from webhook_dev.replay.outcome import Outcome, outcome_of
from webhook_dev.replay.replayer import replay_exchange, title_of
from webhook_dev.replay.shards import Record, ShardConfig, frame, read_frame
from webhook_dev.reviews.comparison import Ignore
from webhook_dev.reviews.exchange import Exchange
from webhook_dev.serving.upstream import Upstream
from webhook_dev.serving.upstreams.in_process import InProcessApp
from webhook_dev.serving.upstreams.url import UrlUpstream

if TYPE_CHECKING:
    from webhook_dev.policy.decision import Side
    from webhook_dev.policy.evaluator import PolicyEvaluator


async def serve(config: ShardConfig) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(os.dup(1), "wb")
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    # The app's own prints must not land in our frames.
    os.dup2(2, 1)
    if config.policy_binary is not None:
        await _serve_policies(config, reader, writer)
        return
    target: Upstream
    if config.app is not None:
        # The app on this shard's own loop: a worker process would only add a process
        # switch to every call (nothing reloads during a replay).
        target = InProcessApp(config.app, cwd=Path(config.cwd))
    else:
        target = UrlUpstream.for_replay(
            config.url or "", ca_file=Path(config.cacert) if config.cacert else None
        )
    try:
        try:
            await target.start()
        except UsageError as error:
            writer.write(frame(("error", (error.message, error.hint))))
            await writer.drain()
            return
        writer.write(frame(("ready", None)))
        await writer.drain()
        await _answer_batches(_Replayer(config, target).one, reader, writer)
    finally:
        await target.close()
        writer.close()


async def _answer_batches(
    one: Callable[[int, str, int, bytes], Awaitable[Record]],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Each batch of lines on stdin through ``one``, its records back in one frame;
    batches overlap. Returns at EOF."""
    batches: set[asyncio.Task[None]] = set()

    async def answer(batch: list[tuple[int, str, int, bytes]]) -> None:
        records = await asyncio.gather(*(one(*item) for item in batch))
        writer.write(frame(list(zip((item[0] for item in batch), records, strict=True))))
        await writer.drain()

    while True:
        try:
            batch = await read_frame(reader)
        except EOFError:
            break
        task = asyncio.ensure_future(answer(batch))
        batches.add(task)
        task.add_done_callback(batches.discard)
    if batches:
        await asyncio.gather(*batches)


async def _serve_policies(
    config: ShardConfig, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """``replay --policy``'s shard: the lines decided by an evaluator of its own and
    compared here, so decoding, checking and comparing run on every CPU, not one."""
    from webhook_dev.policy.evaluator import PolicyEvaluator

    assert config.policy_binary is not None
    try:
        evaluator = await PolicyEvaluator.start(
            Path(config.policy_binary), [Path(path) for path in config.policies]
        )
    except UsageError as error:
        writer.write(frame(("error", (error.message, error.hint))))
        await writer.drain()
        writer.close()
        return
    try:
        writer.write(frame(("ready", None)))
        await writer.drain()
        await _answer_batches(_PolicyChecker(config, evaluator).one, reader, writer)
    finally:
        await evaluator.close()
        writer.close()


def _selected(
    where: query.Query, path: str, line_number: int, data: bytes
) -> Exchange | Skipped | None:
    """The line's exchange when ``where`` takes it; else what to report instead (a
    damaged line's warning, or ``None`` for a line the filter drops)."""
    line = stream.decode_line(Path(path), 0, len(data), line_number, data)
    if line.exchange is None:
        return Skipped(f"{line.error}: skipped")
    if where and not where.matches(summary(line.exchange)):
        return None
    return line.exchange


class _Replayer:
    def __init__(self, config: ShardConfig, target: Upstream) -> None:
        self.config = config
        self.target = target
        self.where = query.parse(config.where)
        self.key = redaction_key()
        self.calls = asyncio.Semaphore(max(1, config.jobs))

    async def one(self, _number: int, path: str, line_number: int, data: bytes) -> Record:
        exchange = _selected(self.where, path, line_number, data)
        if not isinstance(exchange, Exchange):
            return exchange
        where = f"{path}:{line_number}"
        async with self.calls:
            try:
                result = await replay_exchange(
                    exchange,
                    self.target,
                    idempotence=self.config.idempotence,
                    redaction_key=self.key,
                    where=where,
                    ignore=Ignore(self.config.ignore),
                )
            except ReviewError as error:
                return Skipped(f"{where}: cannot replay ({error})")
        return outcome_of(result, as_json=self.config.as_json)


class _PolicyChecker:
    """One line through the policies, as :class:`_Replayer` replays one."""

    def __init__(self, config: ShardConfig, evaluator: PolicyEvaluator) -> None:
        self.config = config
        self.evaluator = evaluator
        self.where = query.parse(config.where)
        self.side = cast("Side | None", config.side)  # replay's click.Choice gave a Side

    async def one(self, _number: int, path: str, line_number: int, data: bytes) -> Record:
        from webhook_dev.policy.check import check_exchange, render

        exchange = _selected(self.where, path, line_number, data)
        if not isinstance(exchange, Exchange):
            return exchange
        as_json = self.config.as_json
        check = await check_exchange(
            exchange,
            self.evaluator,
            where=f"{path}:{line_number}",
            side=self.side,
            objects=as_json,
        )
        return Outcome(
            where=check.where,
            title=title_of(check.exchange),
            passed=check.passed,
            details="" if check.passed or as_json else render(check),
            record=check.to_json() if as_json else None,
            compared=check.compared,
        )


def _read_exactly(size: int) -> bytes:
    """``size`` bytes of stdin, unbuffered (the event loop reads the rest of the pipe)."""
    data = b""
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    head = _read_exactly(4)
    if len(head) < 4:
        return
    config = pickle.loads(_read_exactly(int.from_bytes(head, "big")))
    if config.app is not None:
        asyncio.run(serve(config))  # the user's app on the loop web.run_app gives it
        return
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))


if __name__ == "__main__":
    main()
