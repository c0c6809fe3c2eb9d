"""Shadow mode as data: what to compare, production's answers beside the local code's. Pure.

In shadow mode (``up --shadow``) the webhook that runs in the cluster keeps deciding; the
local code answers the same live requests, and each answer is compared with production's.
The *control* is production (it decides, and its answer always wins), the *candidate* is
the local code (its failure is recorded, never raised). This module holds:

* :class:`ShadowSpec`: the comparison's options (``--calibrate``, ``--ignore``,
  ``--allow-side-effects``) as one validated value, built at the command line's edge;
* :class:`ControlAnswer` and :class:`ShadowCall`: production's answer(s) to one call, and
  the comparison, carried on the :class:`~webhook_dev.reviews.exchange.Exchange` whose own
  ``response_review`` is the local code's answer, and written to the recording;
* :func:`compare_call`: the comparison itself, on the shared model
  (:mod:`webhook_dev.reviews.comparison`): by meaning, ``--ignore`` muted, and with
  ``--calibrate`` the parts where production disagreed with itself reported as noise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook_dev.reviews import kinds
from webhook_dev.reviews.comparison import (
    Comparison,
    Difference,
    Ignore,
    not_comparable,
    separate_noise,
)
from webhook_dev.reviews.json_body import JsonObject

#: The field a candidate that gave no usable answer differs in.
ANSWER_FIELD = "http status"


#: The path prefix of the copy entries' calls; the rest names the production entry.
SHADOW_PATH = "/webhook-dev/shadow/"


def target_key(config_kind: str, config_name: str, entry_name: str) -> str:
    """The path segment naming one production entry: stable across sessions, URL-safe."""
    digest = hashlib.sha256(f"{config_kind}/{config_name}/{entry_name}".encode()).hexdigest()
    return digest[:16]


@dataclass(frozen=True)
class ShadowSpec:
    """How shadow mode compares: one value for ``--calibrate``, ``--ignore`` and
    ``--allow-side-effects``. Build it with :meth:`from_flags`."""

    calibrate: bool = False  # production answers each request twice: its disagreement is noise
    ignore: Ignore = field(default_factory=Ignore)
    allow_side_effects: bool = False  # production is called again even with sideEffects Some

    @classmethod
    def from_flags(
        cls, *, calibrate: bool, ignore: Iterable[str], allow_side_effects: bool
    ) -> ShadowSpec:
        """Raises :class:`ValueError` for an ``--ignore`` that is no pointer to a field."""
        return cls(calibrate, Ignore.parse(ignore), allow_side_effects)

    def may_call(self, side_effects: str | None, dry_run: bool) -> str | None:
        """Why production may not be called again for a request (``None``: it may).

        A webhook with side effects (``sideEffects: Some``/``Unknown``, or v1beta1's
        default) would do them twice, once for the cluster and once for us. One with
        ``NoneOnDryRun`` has them on every request but a dry run: the identical request
        (we never rewrite it) is safe to send again only when it is a dry run.
        """
        if self.allow_side_effects or side_effects == "None":
            return None
        if side_effects == "NoneOnDryRun" and dry_run:
            return None
        return (
            f"production declares sideEffects: {side_effects or 'Unknown'}; it is not called "
            "a second time without --allow-side-effects"
        )


@dataclass(frozen=True)
class ControlAnswer:
    """Production's answer to the identical request, as this machine got it."""

    http_status: int  # 0: no HTTP answer (unreachable, timed out before one)
    review: JsonObject | None
    error: str | None = None
    duration_ms: float | None = None

    def to_json(self) -> JsonObject:
        line: JsonObject = {"http_status": self.http_status, "response": self.review}
        if self.error is not None:
            line["error"] = self.error
        if self.duration_ms is not None:
            line["duration_ms"] = round(self.duration_ms, 3)
        return line

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ControlAnswer:
        review = data.get("response")
        if review is not None and not isinstance(review, dict):
            raise ValueError("shadow.control.response is not an object")
        duration = data.get("duration_ms")
        return cls(
            http_status=int(data.get("http_status") or 0),
            review=review,
            error=None if data.get("error") is None else str(data["error"]),
            duration_ms=None if duration is None else float(duration),
        )


@dataclass
class ShadowCall:
    """One shadowed call: which production entry, its answer(s), and what differed.

    ``control`` is ``None`` when production was not called (``skipped`` says why: side
    effects, too many calls in flight). The comparison is kept as field names only (the
    recording holds both answers; the details are recomputed where they are shown).
    """

    entry: str  # the production entry: "<configuration>/<entry name>"
    control: ControlAnswer | None = None
    again: ControlAnswer | None = None  # --calibrate: production's second answer
    comparison: Comparison | None = None  # None: not finished yet
    skipped: str | None = None

    @property
    def differed(self) -> bool:
        return self.comparison is not None and bool(self.comparison.differences)

    @property
    def noisy(self) -> bool:
        return self.comparison is not None and bool(self.comparison.noise)

    @property
    def compared(self) -> bool:
        return self.comparison is not None and self.comparison.comparable

    def to_json(self) -> JsonObject:
        comparison = self.comparison or Comparison()
        line: JsonObject = {
            "entry": self.entry,
            "control": None if self.control is None else self.control.to_json(),
            "differed": list(comparison.fields),
            "noise": [difference.field for difference in comparison.noise],
        }
        if self.again is not None:
            line["again"] = self.again.to_json()
        if comparison.unknown:
            line["not_compared"] = list(comparison.unknown)
        if self.skipped is not None:
            line["skipped"] = self.skipped
        return line

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShadowCall:
        """Read a recording's ``shadow``; :class:`ValueError` when malformed."""
        if not isinstance(data, Mapping) or not isinstance(data.get("entry"), str):
            raise ValueError("shadow has no entry")
        control, again = data.get("control"), data.get("again")
        fields = _names(data.get("differed"))
        noise = _names(data.get("noise"))
        return cls(
            entry=data["entry"],
            control=None if control is None else ControlAnswer.from_json(control),
            again=None if again is None else ControlAnswer.from_json(again),
            comparison=Comparison(
                tuple(Difference(name, None, None) for name in fields),
                unknown=_names(data.get("not_compared")),
                noise=tuple(Difference(name, None, None) for name in noise),
            ),
            skipped=None if data.get("skipped") is None else str(data["skipped"]),
        )


DROPPED = "dropped"


@dataclass
class ShadowCounts:
    """What ``up --shadow`` prints on exit, ``shadow: N compared, M differed (K noisy)``,
    and its live panel shows."""

    compared: int = 0
    differed: int = 0
    noisy: int = 0
    not_compared: int = 0
    dropped: int = 0
    entries: dict[str, int] = field(default_factory=dict)  # differing calls per entry

    def add(self, call: ShadowCall) -> None:
        comparison = call.comparison
        if call.skipped is not None and call.skipped.startswith(DROPPED):
            self.dropped += 1
        elif comparison is None or not comparison.comparable:
            self.not_compared += 1
        else:
            self.compared += 1
            if comparison.differences:
                self.differed += 1
                self.entries[call.entry] = self.entries.get(call.entry, 0) + 1
            if comparison.noise:
                self.noisy += 1

    def summary(self) -> str:
        line = f"shadow: {self.compared} compared, {self.differed} differed ({self.noisy} noisy)"
        extra = []
        if self.not_compared:
            extra.append(f"{self.not_compared} not compared")
        if self.dropped:
            extra.append(f"{self.dropped} dropped")
        return line + (f"; {', '.join(extra)}" if extra else "")


def _names(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValueError("a shadow field list must be a list of strings")
    return tuple(value)


def compare_call(
    request: kinds.Request,
    control: ControlAnswer,
    candidate_status: int,
    candidate_review: JsonObject | None,
    *,
    again: ControlAnswer | None = None,
    ignore: Ignore | None = None,
) -> Comparison:
    """Production's answer (control) vs the local code's (candidate), by meaning.

    A production answer the apiserver could not use makes the call *not comparable*
    (production is the reference; a broken reference says nothing about the candidate).
    A candidate without a usable answer (HTTP 500, a timeout, not a review) differs in
    ``http status``. ``again`` (``--calibrate``) moves what production disagreed with
    itself on to the noise.
    """
    ignore = ignore or Ignore()
    expected = _meaning(request, control)
    if expected is None:
        return not_comparable([_unusable(control)])
    actual = _meaning(request, ControlAnswer(candidate_status, candidate_review))
    if actual is None:
        muted = ignore.apply(ANSWER_FIELD, control.http_status, candidate_status)
        if muted is None:
            return Comparison()
        return Comparison((Difference(ANSWER_FIELD, control.http_status, candidate_status),))
    compare = kinds.of_request(request).compare
    twice: Comparison | None = None
    if again is not None:
        second = _meaning(request, again)
        if second is not None:
            twice = compare(expected, second)
    return separate_noise(lambda muted: compare(expected, actual, muted), ignore, twice)


def details(request: kinds.Request, call: ShadowCall, candidate: JsonObject | None) -> Comparison:
    """The comparison with its values, recomputed from the answers a recording holds
    (the inspector's side by side). Muting is not repeated: the recorded field names say
    what counted; this says how."""
    if call.control is None:
        return call.comparison or Comparison()
    full = compare_call(request, call.control, 200 if candidate else 0, candidate, again=call.again)
    recorded = call.comparison or Comparison()
    counted, noisy = set(recorded.fields), {d.field for d in recorded.noise}
    everything = full.differences + full.noise
    return Comparison(
        tuple(d for d in everything if d.field in counted),
        unknown=full.unknown,
        noise=tuple(d for d in everything if d.field in noisy),
    )


def _meaning(request: kinds.Request, answer: ControlAnswer) -> kinds.Meaning | None:
    if answer.http_status != 200 or answer.review is None:
        return None
    meaning, _ = kinds.read_response(request, answer.review)
    return meaning


def _unusable(control: ControlAnswer) -> str:
    if control.http_status == 0:
        return f"production did not answer ({control.error or 'no connection'})"
    if control.http_status != 200:
        return f"production answered HTTP {control.http_status}"
    return "production's answer is not a review"
