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

Two refinements, as GitHub's Scientist and Twitter's Diffy make them:

* **ignored**: ``--ignore JSONPOINTER`` mutes a known difference. A pointer addresses the
  *meaning document* of an answer (docs/comparison.md): ``/allowed``, ``/status/message``,
  ``/warnings``, ``/auditAnnotations/<key>``, ``/object/metadata/annotations/<key>``,
  ``/result/message``, ``/convertedObjects/0/spec/x``. A pointer that names a whole field
  drops it; one inside a field removes that part from both values before they are compared.
* **noise**: when the control answered the same request twice and disagreed with itself,
  every part where it did is noise. A field that differs only in noisy parts is reported in
  :attr:`Comparison.noise`, apart from the differences; one that also differs elsewhere
  stays a difference.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import jsonpointer


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
    # Differences in parts where the control disagreed with itself (see the module's doc).
    noise: tuple[Difference, ...] = field(default_factory=tuple)

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

    @property
    def noisy(self) -> bool:
        return bool(self.noise)


# --- ignoring known differences --------------------------------------------------------------


@dataclass(frozen=True)
class Ignore:
    """JSON pointers (RFC 6901) into the meaning document whose differences do not count."""

    pointers: tuple[str, ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str]) -> Ignore:
        """``--ignore`` values, checked. Raises :class:`ValueError` naming the bad one."""
        pointers = []
        for text in texts:
            if not text.startswith("/") or text == "/":
                raise ValueError(
                    f"--ignore {text!r} is not a JSON pointer to a field: it starts with '/' "
                    "and names one, e.g. /warnings or /object/metadata/annotations/stamp"
                )
            try:
                jsonpointer.JsonPointer(text)
            except jsonpointer.JsonPointerException as error:
                raise ValueError(f"--ignore {text!r} is not a JSON pointer: {error}") from error
            pointers.append(text)
        return cls(tuple(dict.fromkeys(pointers)))

    def __bool__(self) -> bool:
        return bool(self.pointers)

    def __add__(self, other: Ignore) -> Ignore:
        return Ignore(tuple(dict.fromkeys(self.pointers + other.pointers)))

    def apply(self, name: str, expected: Any, actual: Any) -> tuple[Any, Any] | None:
        """The pair as compared once muted; ``None`` when the whole field is ignored."""
        own = field_pointer(name)
        for pointer in self.pointers:
            if own == pointer or own.startswith(pointer + "/"):
                return None
        inner = [p[len(own) :] for p in self.pointers if p.startswith(own + "/")]
        if not inner:
            return expected, actual
        return _without(expected, inner), _without(actual, inner)


NOTHING_IGNORED = Ignore()

_INDEX = re.compile(r"\[(\d+)\]")


def field_pointer(name: str) -> str:
    """The pointer of a field as :class:`Difference` names it: ``status.code`` is
    ``/status/code``, ``convertedObjects[0]`` is ``/convertedObjects/0``."""
    return "/" + _INDEX.sub(r".\1", name).replace(".", "/")


def _without(value: Any, pointers: Iterable[str]) -> Any:
    """``value`` with each pointer's target removed (a copy; missing targets are fine)."""
    if not isinstance(value, dict | list):
        return value
    result = copy.deepcopy(value)
    for pointer in pointers:
        parts = jsonpointer.JsonPointer(pointer).parts
        node: Any = result
        for part in parts[:-1]:
            node = _step(node, part)
            if node is None:
                break
        else:
            if isinstance(node, dict):
                node.pop(parts[-1], None)
            elif isinstance(node, list) and parts[-1].isdigit() and int(parts[-1]) < len(node):
                node[int(parts[-1])] = None  # keep the indexes of what follows
    return result


def _step(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return None


def compare_fields(
    pairs: Iterable[tuple[str, Any, Any]], ignore: Ignore = NOTHING_IGNORED
) -> Comparison:
    """The differences among ``(field, expected, actual)`` triples, in their order, with
    ``ignore``'s parts muted. A difference keeps the values as they were, unmuted."""
    differences = []
    for name, want, got in pairs:
        muted = ignore.apply(name, want, got)
        if muted is not None and muted[0] != muted[1]:
            differences.append(Difference(name, want, got))
    return Comparison(tuple(differences))


# --- noise: the control disagreeing with itself ----------------------------------------------


def noisy_pointers(control_twice: Comparison) -> Ignore:
    """The parts where the control's two answers differ, as pointers: inside an object, each
    leaf that differs (``/object/metadata/annotations/stamp``), not the whole object."""
    pointers: list[str] = []
    for difference in control_twice.differences:
        own = field_pointer(difference.field)
        first, second = difference.expected, difference.actual
        if isinstance(first, dict) and isinstance(second, dict):
            ops = jsonpatch.make_patch(first, second).patch
            pointers.extend(own + str(op["path"]) for op in ops)
            pointers.extend(own + str(op["from"]) for op in ops if "from" in op)
        else:
            pointers.append(own)
    return Ignore(tuple(dict.fromkeys(pointers)))


def separate_noise(
    compare: Callable[[Ignore], Comparison],
    ignore: Ignore,
    control_twice: Comparison | None,
) -> Comparison:
    """Control vs candidate with ``ignore`` muted, and the differences that lie only where
    the control disagreed with itself (``control_twice``: its first answer vs its second)
    moved to :attr:`Comparison.noise`. ``compare(ignore)`` makes the comparison."""
    raw = compare(ignore)
    if control_twice is None or not control_twice.differences or raw.unknown:
        return raw
    quiet = compare(ignore + noisy_pointers(control_twice))
    still = set(quiet.fields)
    return Comparison(
        differences=tuple(d for d in raw.differences if d.field in still),
        noise=tuple(d for d in raw.differences if d.field not in still),
    )


def not_comparable(unknown: Iterable[str]) -> Comparison:
    """A comparison that could not be made, naming what the candidate lacked."""
    return Comparison(unknown=tuple(unknown))
