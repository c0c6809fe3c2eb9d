"""``serve --policy`` and ``up --policy``: each live admission call decided by the policies
too, beside the webhook's answer, and kept in the recording.

A stage of the serving stack (:class:`~webhook_dev.serving.stack.Stage`): the proxy has
already answered when an exchange reaches it, so the policy never touches the answer.
Each admission exchange goes to one long-running evaluator process (pipelined: many in
flight), and the exchanges are handed on — to the recorder, the console, the live panel,
the inspector — in the order they came, each with its :attr:`Exchange.policy` set. The
webhook's answer is the control and always wins; the policy's failure (a stopped or slow
evaluator) is recorded as *not compared*, never raised and never holding an exchange back
longer than :data:`DECISION_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from webhook_dev.policy.check import check_exchange
from webhook_dev.policy.decision import Side, live_record
from webhook_dev.policy.evaluator import PolicyEvaluator
from webhook_dev.reviews import kinds
from webhook_dev.reviews.comparison import not_comparable
from webhook_dev.reviews.exchange import Event, Exchange, Hooks
from webhook_dev.reviews.json_body import JsonObject

# An exchange waits at most this long for its decision before it is passed on without.
DECISION_TIMEOUT = 5.0


class LivePolicy:
    """The policies of ``files`` deciding every admission exchange that passes."""

    def __init__(self, binary: Path, files: Sequence[Path], *, side: Side | None = None) -> None:
        self.binary = binary
        self.files = tuple(files)
        self.side = side
        self._evaluator: PolicyEvaluator | None = None
        self._downstream = Hooks()
        self._held: deque[tuple[Exchange, asyncio.Future[JsonObject] | None]] = deque()
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the evaluator, before serving: a policy the apiserver would refuse stops
        the command with its message (:class:`~webhook_dev.policy.evaluator.PolicyRefused`)."""
        self._evaluator = await PolicyEvaluator.start(self.binary, self.files)
        self._pump = asyncio.ensure_future(self._hand_on())

    @property
    def policies(self) -> tuple[str, ...]:
        return self._evaluator.policies if self._evaluator is not None else ()

    # --- the stage ---------------------------------------------------------------------------

    def attach(self, downstream: Hooks) -> None:
        self._downstream = downstream

    def on_exchange(self, exchange: Exchange) -> None:
        decision = None
        if self._evaluator is not None and exchange.review_kind is kinds.ADMISSION:
            decision = asyncio.ensure_future(self._decide(exchange, self._evaluator))
        if decision is None and not self._held:
            self._downstream.exchange(exchange)  # nothing to wait for, nothing ahead of it
            return
        self._held.append((exchange, decision))
        self._wake.set()

    def on_event(self, event: Event) -> None:
        self._downstream.event(event)

    async def drain(self) -> None:
        """Hand on everything held (each waits its decision at most the timeout), then
        stop the evaluator."""
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        while self._held:
            await self._hand_on_first()
        await self.close()

    async def close(self) -> None:
        if self._evaluator is not None:
            evaluator, self._evaluator = self._evaluator, None
            await evaluator.close()

    # --- in order, off the answer's path -----------------------------------------------------

    async def _decide(self, exchange: Exchange, evaluator: PolicyEvaluator) -> JsonObject:
        try:
            check = await asyncio.wait_for(
                check_exchange(exchange, evaluator, where="live", side=self.side),
                DECISION_TIMEOUT,
            )
        except TimeoutError:
            reason = f"the policy evaluator did not answer within {DECISION_TIMEOUT:.0f} s"
            return live_record(self.side, not_comparable([reason]), None)
        return check.to_record()

    async def _hand_on(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._held:
                await self._hand_on_first()

    async def _hand_on_first(self) -> None:
        exchange, decision = self._held[0]
        if decision is not None:
            try:
                exchange.policy = await asyncio.shield(decision)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a bug of ours: the exchange goes on regardless
                reason = f"the policy evaluation failed ({error!r})"
                exchange.policy = live_record(self.side, not_comparable([reason]), None)
        self._held.popleft()
        self._downstream.exchange(exchange)
