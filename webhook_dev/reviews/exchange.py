"""An exchange (one webhook call, admission or conversion, and its answer) and the hook
that publishes it.

Like a mitmproxy flow, an :class:`Exchange` is plain data: the proxy fills it in and hands
it to every subscriber — the recorder, the console, ``up``'s live view, the inspector.
Subscribers are small objects with optional ``on_exchange(exchange)`` and
``on_event(event)`` methods; the proxy never knows which ones exist.

Subscribers run on the event loop and must be quick; one that raises never breaks
serving, and every failure is reported on stderr: the first with its traceback, later
ones as one line each, at most one line a second per subscriber (with a count of those
folded into it), so a subscriber that fails on every call can neither go unnoticed nor
flood the console.
"""

from __future__ import annotations

import enum
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from webhook_dev.reviews import kinds
from webhook_dev.reviews.admission import patch_op_count
from webhook_dev.reviews.flags import Flag
from webhook_dev.reviews.json_body import JsonObject
from webhook_dev.reviews.shadow import ShadowCall

_NOT_COUNTED = object()

# The status an exchange gets when the client closed the connection before its request
# arrived whole: nginx's "client closed request". Nothing was answered (no one was left
# to answer), so it is neither a 4xx the client could read nor a failure of ours.
CLIENT_CLOSED = 499


@dataclass
class Exchange:
    """One call: what came in, what went back, how long it took, what looks wrong.

    ``request_review`` is ``None`` when the body was not a usable AdmissionReview (the
    proxy answered 4xx itself); ``response_review`` is ``None`` when there was no valid
    JSON answer (then ``error`` says why, e.g. the handler's traceback).
    """

    id: str
    started: datetime
    path: str
    http_status: int = 0
    request_review: JsonObject | None = None
    response_review: JsonObject | None = None
    duration_ms: float = 0.0
    upstream_ms: float | None = None  # the round trip to the code that answered
    # Where the rest went (``None``: not measured, e.g. an old recording): reading and
    # checking the request, waiting for a worker (a reload, a restart); and checking the
    # answer, which the proxy does after the answer went back (not part of duration_ms).
    read_ms: float | None = None
    wait_ms: float | None = None
    checks_ms: float | None = None
    generation: int | None = None
    flags: list[Flag] = field(default_factory=list)
    error: str | None = None
    # The labels of the request's Namespace when the call came (``None``: not recorded,
    # e.g. an older recording or a cluster-scoped object): what an admission policy's
    # namespaceSelector and ``namespaceObject`` read.
    namespace_labels: dict[str, str] | None = None
    # Shadow mode (``up --shadow``): production's answer to this same request and what
    # differed; the exchange's own response is the local code's (never sent to the cluster).
    shadow: ShadowCall | None = None
    # ``--policy`` live: what the admission policies decided for this request and how
    # that compares with the answer (``policy.decision.live_record``); ``None``: not
    # evaluated (no ``--policy``, an older recording, not an admission).
    policy: JsonObject | None = None
    # The answer's patch op count, once someone decoded the patch (see patch_ops()).
    _patch_ops: object = field(default=_NOT_COUNTED, init=False, repr=False, compare=False)

    def patch_ops(self) -> int | None:
        """How many operations the answer patches (``None``: no readable patch).

        The console, the index and the inspector all show it; the patch is base64 JSON,
        so it is decoded once per exchange (by the proxy's check, or on first ask).
        """
        if self._patch_ops is _NOT_COUNTED:
            self._patch_ops = patch_op_count(self.response)
        return self._patch_ops  # type: ignore[return-value]

    def counted_patch_ops(self, count: int | None) -> None:
        """Record the op count found by whoever already decoded the patch."""
        self._patch_ops = count

    @property
    def client_closed(self) -> bool:
        """The client gave up before its request arrived whole: its doing, not ours."""
        return self.http_status == CLIENT_CLOSED

    @property
    def review_kind(self) -> kinds.ReviewKind | None:
        """Admission or conversion, from the request's ``kind``; ``None`` for a request
        the door refused (it was no review it knows)."""
        return kinds.of_review(self.request_review)

    @property
    def request(self) -> JsonObject:
        """``request_review["request"]`` or an empty dict."""
        if self.request_review and isinstance(self.request_review.get("request"), dict):
            return dict(self.request_review["request"])
        return {}

    @property
    def response(self) -> JsonObject:
        if self.response_review and isinstance(self.response_review.get("response"), dict):
            return dict(self.response_review["response"])
        return {}


# --- lifecycle events, for subscribers that show the state of the serving stack ---------


@dataclass(frozen=True)
class Serving:
    """The proxy listens at ``url``."""

    url: str


@dataclass(frozen=True)
class ReloadStarted:
    reason: str
    first: bool = False  # the very first start, not a reload


@dataclass(frozen=True)
class ChangesPassedOver:
    """Files changed while the ``--run`` command started; taken as its own output, they
    restart nothing. Shown, so that a save made in that moment is not lost unseen."""

    files: str  # as the console shows them: "a.go, b.go and 2 more"
    command: str


class GenerationKind(enum.Enum):
    """What one generation of the upstream is; its value is what people call it."""

    APP_WORKER = "worker"  # a worker process running the user's aiohttp app
    COMMAND = "generation"  # one run of a ``--run`` command (a Go binary, ``node ...``)


@dataclass(frozen=True)
class GenerationReady:
    """A new generation answers calls from now on."""

    generation: int
    pid: int | None
    startup_ms: float
    kind: GenerationKind = GenerationKind.APP_WORKER


@dataclass(frozen=True)
class GenerationFailed:
    """A new generation could not start (import error, failed build, never listened);
    the old one (if any) keeps serving."""

    generation: int
    error: str
    still_serving: int | None
    kind: GenerationKind = GenerationKind.APP_WORKER


@dataclass(frozen=True)
class GenerationExited:
    """A generation stopped (or is being replaced) without being asked to: a crash,
    ``sys.exit`` in user code, a blocked event loop. ``reason`` says which, when known."""

    generation: int
    returncode: int | None
    kind: GenerationKind = GenerationKind.APP_WORKER
    reason: str | None = None


@dataclass(frozen=True)
class GenerationOutput:
    """A line the user's code printed."""

    generation: int
    line: str


@dataclass(frozen=True)
class GenerationMemory:
    """A worker's resident memory, sampled now and then; ``over_limit`` past the warning."""

    generation: int
    rss_bytes: int
    over_limit: bool = False
    limit_bytes: int = 0


@dataclass(frozen=True)
class BadMessage:
    """A client sent something that is not an HTTP request the proxy can read (bad
    request line, chunking, headers, encoding): answered 400 before any exchange began.
    ``message`` names the problem and never quotes the client's bytes."""

    peer: str
    message: str


@dataclass(frozen=True)
class RecordingFailed:
    """An exchange could not be written (a full disk, ...); the file holds no part of it.
    Sent for the first failure of a run of them; ``missed`` counts the run so far."""

    path: str
    error: str
    missed: int


@dataclass(frozen=True)
class RecordingMissed:
    """One more exchange not recorded in a run of failures (after :class:`RecordingFailed`,
    which the console prints once): ``missed`` counts the run so far, for views that show
    a live count (the inspector, ``up``'s panel)."""

    path: str
    missed: int


@dataclass(frozen=True)
class RecordingResumed:
    """Writing works again after ``missed`` exchanges were not recorded since ``since``."""

    path: str
    missed: int
    since: datetime


Event = (
    Serving
    | ReloadStarted
    | ChangesPassedOver
    | GenerationReady
    | GenerationFailed
    | GenerationExited
    | GenerationOutput
    | GenerationMemory
    | BadMessage
    | RecordingFailed
    | RecordingMissed
    | RecordingResumed
)


def now() -> datetime:
    return datetime.now(UTC)


# At most one failure line a second per subscriber; failures in between are counted.
FAILURE_REPORT_INTERVAL = 1.0


@dataclass
class _Failures:
    """What has been said about one subscriber's failures, and what is still unsaid."""

    total: int = 0
    unreported: int = 0
    last_report: float = float("-inf")


class Hooks:
    """The one hook point: a list of subscribers and the two ways to call them."""

    def __init__(self, subscribers: Any = ()) -> None:
        self._subscribers: list[Any] = list(subscribers)
        self._failures: dict[int, _Failures] = {}

    def failures(self, subscriber: Any) -> int:
        """How many calls ``subscriber`` has failed (for tests and status views)."""
        entry = self._failures.get(id(subscriber))
        return entry.total if entry is not None else 0

    def subscribe(self, subscriber: Any, *, first: bool = False) -> None:
        """Add an object with ``on_exchange`` and/or ``on_event``; ``first``: before the
        others (the recorder, so an exchange is on disk once any view has shown it)."""
        if first:
            self._subscribers.insert(0, subscriber)
        else:
            self._subscribers.append(subscriber)

    def exchange(self, exchange: Exchange) -> None:
        self._call("on_exchange", exchange)

    def event(self, event: Event) -> None:
        self._call("on_event", event)

    def _call(self, method: str, argument: Any) -> None:
        for subscriber in list(self._subscribers):
            callback = getattr(subscriber, method, None)
            if callback is None:
                continue
            try:
                callback(argument)
            except Exception as error:
                self._report(subscriber, method, error)

    def _report(self, subscriber: Any, method: str, error: Exception) -> None:
        entry = self._failures.setdefault(id(subscriber), _Failures())
        entry.total += 1
        clock = time.monotonic()
        if entry.total > 1 and clock - entry.last_report < FAILURE_REPORT_INTERVAL:
            entry.unreported += 1
            return
        folded = f" (and {entry.unreported} more since the last report)" if entry.unreported else ""
        entry.unreported, entry.last_report = 0, clock
        try:
            print(
                f"webhook-dev: subscriber {subscriber!r} failed in {method} "
                f"({entry.total} failures so far){folded}: {type(error).__name__}: {error}",
                file=sys.stderr,
            )
            if entry.total == 1:
                traceback.print_exception(error, file=sys.stderr)
        except (OSError, ValueError):
            pass  # stderr closed: serving goes on regardless
