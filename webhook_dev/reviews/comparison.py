"""Two answers to the same request, compared by meaning: the one model that ``replay``
(recorded vs current code), shadow mode (production vs local code) and the policy check
(webhook vs policy) share. Pure.

A *control* answer (the recorded one, production's, the webhook's) is the expectation; a
*candidate* is what is being tried. Each review kind says which fields carry meaning (an
admission answer's decision, status, warnings and the object after its patch; a
conversion's result and each converted object) and builds the pairs; this module holds
what a difference is and how a list of them reads.
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

    @property
    def matches(self) -> bool:
        return not self.differences

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(difference.field for difference in self.differences)


def compare_fields(pairs: Iterable[tuple[str, Any, Any]]) -> Comparison:
    """The differences among ``(field, expected, actual)`` triples, in their order."""
    return Comparison(
        tuple(Difference(name, want, got) for name, want, got in pairs if want != got)
    )
