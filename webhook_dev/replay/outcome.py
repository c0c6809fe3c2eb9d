"""What the report needs of one replayed exchange, small enough to cross a process.

A :class:`~webhook_dev.replay.replayer.ReplayResult` holds both reviews and the
exchange (kilobytes); a shard process (:mod:`~webhook_dev.replay.shards`) sends back only
this: the line to print, and for a failure its rendered diff (or its JSON record).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webhook_dev.replay.replayer import ReplayResult, render


@dataclass(frozen=True)
class Outcome:
    """One result as the report prints it."""

    where: str
    title: str
    passed: bool
    details: str = ""  # render(result) for a failure, "" for a pass
    record: dict[str, Any] | None = None  # result.to_json(), when the report is JSON
    # False: the answers could not be compared (``replay --policy``: the recording lacks
    # what a policy reads); counted apart, neither passed nor failed.
    compared: bool = True


def outcome_of(result: ReplayResult, *, as_json: bool) -> Outcome:
    """The :class:`Outcome` of ``result``; the diff is rendered only for a failure."""
    passed = result.passed
    return Outcome(
        where=result.where,
        title=result.title,
        passed=passed,
        details="" if passed or as_json else render(result),
        record=result.to_json() if as_json else None,
    )
