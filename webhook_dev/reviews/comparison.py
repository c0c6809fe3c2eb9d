"""Two answers to the same request, compared by meaning: the one model that ``replay``
(recorded vs current code), shadow mode (production vs local code) and the policy check
(webhook vs policy) share. Pure.

A *control* answer (the recorded one, production's, the webhook's) is the expectation; a
*candidate* is what is being tried. Each review kind says which fields carry meaning (an
admission answer's decision, status, warnings and the object after its patch; a
conversion's result and each converted object) and builds the pairs; this module holds
what a difference is and how a list of them reads.

A candidate may also be unable to decide: a policy that reads the request's Namespace
when the recording holds no namespace labels, or asks the cluster's authorizer. Such a
comparison is *not comparable* (``unknown`` names what was missing): counted apart,
neither a pass nor a difference, never filled in by a guess. Shadow mode can use the same
notion for a candidate that could not answer for a reason outside the code under test.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Difference:
    """One field that differs: ``expected`` is the control's value, ``actual`` the
    candidate's. ``field`` names it as the user reads it (``allowed``, ``object``,
    ``convertedObjects[0]``)."""

    field: str
    expected: Any
    actual: Any

    @property
    def is_object(self) -> bool:
        """Whether the values are whole objects, shown as a diff rather than inline."""
        return isinstance(self.expected, dict) or isinstance(self.actual, dict)


@dataclass(frozen=True)
class Comparison:
    differences: tuple[Difference, ...] = field(default_factory=tuple)
    # What the candidate needed and did not have (``namespaceObject``, ``authorizer``):
    # when any, the answers were not compared and ``differences`` is empty.
    unknown: tuple[str, ...] = field(default_factory=tuple)

    @property
    def comparable(self) -> bool:
        return not self.unknown

    @property
    def matches(self) -> bool:
        """The candidate agrees with the control (a comparison it could not make does not
        match: callers that count it apart ask :attr:`comparable` first)."""
        return not self.differences and not self.unknown

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(difference.field for difference in self.differences)


def compare_fields(pairs: Iterable[tuple[str, Any, Any]]) -> Comparison:
    """The differences among ``(field, expected, actual)`` triples, in their order."""
    return Comparison(
        tuple(Difference(name, want, got) for name, want, got in pairs if want != got)
    )


def not_comparable(unknown: Iterable[str]) -> Comparison:
    """A comparison that could not be made, naming what the candidate lacked."""
    return Comparison(unknown=tuple(unknown))
