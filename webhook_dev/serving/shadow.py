"""Shadow mode's serving side: answer the copy entry at once, compare off the answer's path.

``up --shadow`` adds, beside each production entry, a *copy* whose ``clientConfig`` calls
``/webhook-dev/shadow/<key>`` here, with ``failurePolicy: Ignore`` and a one-second timeout.
The apiserver's decision never waits for the comparison: the proxy hands such a call to
:meth:`Shadower.answer_at_once`, which answers ``allowed: true`` without a patch at once —
never the local code's answer — and starts the comparison as a task of its own:

* the local code answers the identical request (through the same upstream, so hot reload
  and zero-loss handover work as in ``up``), at production's own path;
* the production webhook answers the identical request sent from this machine
  (:mod:`~webhook_dev.serving.production`), twice with ``--calibrate``, never when its
  ``sideEffects`` forbid a second call (without ``--allow-side-effects``);
* :func:`webhook_dev.reviews.shadow.compare_call` compares them, and the exchange — the
  local code's answer as its response, production's in ``exchange.shadow`` — goes to the
  hooks like any other: console, live view, recording, inspector.

At most :data:`MAX_IN_FLIGHT` comparisons run at once; a call beyond that is still
answered at once and published as *dropped* (counted apart in :class:`ShadowCounts`),
so a burst can never make the copy slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from webhook_dev.reviews import fast_json, kinds
from webhook_dev.reviews.admission import AdmissionRequest
from webhook_dev.reviews.comparison import not_comparable
from webhook_dev.reviews.exchange import Exchange, Hooks, now
from webhook_dev.reviews.json_body import JsonObject
from webhook_dev.reviews.shadow import (
    SHADOW_PATH,
    ControlAnswer,
    ShadowCall,
    ShadowCounts,
    ShadowSpec,
    compare_call,
)
from webhook_dev.serving.production import ProductionAddress, ProductionClient
from webhook_dev.serving.upstream import Upstream, UpstreamRequest, UpstreamResponse

PREFIX = SHADOW_PATH
MAX_IN_FLIGHT = 512
# How long ``close`` lets comparisons in flight finish before cancelling them.
DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class ShadowTarget:
    """One shadowed production entry.

    :param entry: ``<configuration>/<entry>`` as the user reads it.
    :param path: production's own path (``service.path`` or the ``url:``'s path), which the
        local code is called at too.
    :param production: where production answers; ``None`` with ``skipped`` saying why it
        is not called (side effects).
    :param side_effects: production's ``sideEffects``.
    :param timeout_seconds: production's ``timeoutSeconds``: the budget of each side.
    """

    key: str
    entry: str
    path: str
    production: ProductionAddress | None
    side_effects: str | None = "None"
    timeout_seconds: float = 10.0


class Shadower:
    """The shadow route of the proxy: see the module's doc."""

    def __init__(self, upstream: Upstream, hooks: Hooks, spec: ShadowSpec) -> None:
        self.upstream = upstream
        self.hooks = hooks
        self.spec = spec
        self.counts = ShadowCounts()
        self._in_flight = 0
        self._targets: dict[str, ShadowTarget] = {}
        self._clients: dict[str, ProductionClient] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def add_target(self, target: ShadowTarget) -> None:
        """Serve ``target``'s copy entry from now on (the session adds them once planned)."""
        self._targets[target.key] = target
        if target.production is not None:
            self._clients[target.key] = ProductionClient(target.production)

    @property
    def targets(self) -> Mapping[str, ShadowTarget]:
        return self._targets

    def target_of(self, path: str) -> ShadowTarget | None:
        """The target a copy entry's call is for; ``None``: not a shadow path."""
        if not path.startswith(PREFIX):
            return None
        return self._targets.get(path[len(PREFIX) :].split("/")[0])

    def answer_at_once(
        self, exchange: Exchange, request: kinds.Request, body: bytes, target: ShadowTarget
    ) -> web.Response:
        """``allowed: true``, no patch, to the apiserver now; the comparison as a task."""
        exchange.shadow = ShadowCall(entry=target.entry)
        if not isinstance(request, AdmissionRequest):
            exchange.shadow.comparison = not_comparable(["shadow copies are admission entries"])
        elif self._in_flight >= MAX_IN_FLIGHT:
            exchange.shadow.skipped = f"dropped: {MAX_IN_FLIGHT} comparisons already in flight"
            exchange.shadow.comparison = not_comparable([exchange.shadow.skipped])
        else:
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(
                self._compare(exchange, request, body, target)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if exchange.shadow.comparison is not None:
            self.counts.add(exchange.shadow)
            asyncio.get_running_loop().call_soon(self.hooks.exchange, exchange)
        return web.Response(
            status=200,
            text=fast_json.dumps_compact(_allow(request)),
            content_type="application/json",
        )

    async def compare_review(self, review: JsonObject, target: ShadowTarget) -> Exchange:
        """Compare the answers to a review no apiserver sent: a ConversionReview built from
        a CRD's stored objects (production converts, the local conversion is compared per
        object). Returns the exchange once published."""
        body = fast_json.dumps_compact(review).encode()
        request = kinds.parse_request(body)
        exchange = Exchange(
            id=uuid.uuid4().hex[:16], started=now(), path=target.path, request_review=request.review
        )
        exchange.shadow = ShadowCall(entry=target.entry)
        self._in_flight += 1
        await self._compare(exchange, request, body, target)
        return exchange

    async def _compare(
        self, exchange: Exchange, request: kinds.Request, body: bytes, target: ShadowTarget
    ) -> None:
        call = exchange.shadow
        assert call is not None
        try:
            loop = asyncio.get_running_loop()
            budget = target.timeout_seconds
            query = f"timeout={budget:g}s"
            local_path = f"{target.path}?{query}"
            dry_run = bool(request.review["request"].get("dryRun"))  # conversions: none
            refusal = self.spec.may_call(target.side_effects, dry_run)
            client = self._clients.get(target.key)
            calls = 2 if self.spec.calibrate else 1
            production: list[asyncio.Task[UpstreamResponse]] = []
            if refusal is None and client is not None:
                production = [
                    loop.create_task(client.send(body, query, budget)) for _ in range(calls)
                ]
            local = await self.upstream.send(
                UpstreamRequest(local_path, body, {"Content-Type": "application/json"}),
                loop.time() + budget,
            )
            answers = [await task for task in production]
            self._fill_local(exchange, request, local)
            if refusal is not None or client is None:
                call.skipped = refusal or "production is not reachable from this machine"
                call.comparison = not_comparable([call.skipped])
            else:
                call.control = _control(answers[0])
                call.again = _control(answers[1]) if len(answers) > 1 else None
                call.comparison = compare_call(
                    request,
                    call.control,
                    local.status,
                    exchange.response_review,
                    again=call.again,
                    ignore=self.spec.ignore,
                )
        except Exception as error:  # a bug of ours: the call is still published, explained
            call.comparison = not_comparable([f"webhook-dev failed comparing: {error!r}"])
        finally:
            self._in_flight -= 1
        self.counts.add(call)
        self.hooks.exchange(exchange)

    def _fill_local(
        self, exchange: Exchange, request: kinds.Request, local: UpstreamResponse
    ) -> None:
        """The exchange as the local code answered it (its checks as the proxy's)."""
        exchange.http_status = local.status
        if not exchange.duration_ms:  # a review no apiserver sent (a conversion sweep)
            exchange.duration_ms = local.elapsed_ms or 0.0
        exchange.generation = local.generation
        exchange.upstream_ms = local.elapsed_ms
        exchange.wait_ms = local.wait_ms
        exchange.error = local.error
        if local.status == 200:
            review = fast_json.loads_object(local.body)
            exchange.response_review = review
            meaning, flags = kinds.read_response(request, review if review else local.body)
            exchange.flags.extend(flags)
            if meaning is not None:
                exchange.counted_patch_ops(meaning.patch_op_count)

    async def close(self) -> None:
        """Let comparisons in flight finish (briefly), then close production's clients."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=DRAIN_SECONDS)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for client in self._clients.values():
            await client.close()


def _allow(request: kinds.Request) -> JsonObject:
    return {
        "apiVersion": request.review["apiVersion"],
        "kind": request.review["kind"],
        "response": {"uid": request.uid, "allowed": True},
    }


def _control(answer: UpstreamResponse) -> ControlAnswer:
    """Production's answer; one webhook-dev made itself (a timeout, a dropped connection)
    is no HTTP answer at all."""
    if answer.error is not None:
        return ControlAnswer(0, None, answer.error, answer.elapsed_ms)
    review = fast_json.loads_object(answer.body) if answer.status == 200 else None
    error = None if review is not None or answer.status != 200 else "not JSON"
    return ControlAnswer(answer.status, review, error, answer.elapsed_ms)
