"""The filter syntax shared by the inspector's list and ``replay --where``.

Pure (no files). One small language, so a filter typed in the page's search box works
unchanged on the command line::

    kind:Pod ns:team-a result:denied latency>100 -user:system:* api-0

- ``field:value`` (or ``field=value``) — equal, ignoring case; ``*`` matches any run of
  characters (``name:web-*``). ``field!=value`` — not equal.
- ``field>N``, ``>=``, ``<``, ``<=`` — for the numeric fields (``latency`` in ms, or with
  an ``s`` or ``ms`` suffix; ``status``, ``patch``, ``generation``) and ``time`` (ISO 8601
  text, compared as text: ``time>=2024-05-01T10:00``).
- ``is:flagged`` — any flag; ``flag:slow`` — one flag (its code or its label).
- ``review:conversion`` or ``review:admission`` — the kind of call (``op:CONVERT`` too;
  a conversion's result is ``converted`` or ``failed``).
- any other word — text that must appear (ignoring case) in the kind, namespace, name,
  user, uid, operation, result, message, path or a flag's label. Quote to keep spaces:
  ``"bad request"``, ``name:"my pod"``.
- ``-`` before a term negates it. Terms are ANDed.

A :class:`Query` tests a list row (:func:`~webhook_dev.recording.summary.summary`) with
:meth:`Query.matches`, and gives the same test as SQL over the index's columns with
:meth:`Query.sql`; the unit tests hold the two to the same answers.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from webhook_dev.errors import UsageError

# field name (and aliases) -> the row key / index column it tests
FIELDS = {
    "kind": "kind",
    "namespace": "namespace",
    "ns": "namespace",
    "name": "name",
    "operation": "operation",
    "op": "operation",
    "user": "user",
    "uid": "uid",
    "result": "result",
    "message": "message",
    "msg": "message",
    "path": "path",
    "id": "id",
    "time": "time",
    "latency": "duration_ms",
    "duration": "duration_ms",
    "status": "http_status",
    "patch": "patch_ops",
    "generation": "generation",
    "gen": "generation",
    "flag": "flags",
    "is": "is",
    "review": "review",
}
NUMERIC = frozenset({"duration_ms", "http_status", "patch_ops", "generation"})
ORDERED = NUMERIC | {"time"}
# The row keys a bare word is searched in (flags: their labels).
TEXT_KEYS = ("kind", "namespace", "name", "user", "uid", "operation", "result", "message", "path")

_TERM = re.compile(r"^(?P<field>[a-z]+)(?P<op>!=|>=|<=|:|=|>|<)(?P<value>.*)$", re.IGNORECASE)


class QueryError(UsageError):
    """A filter that cannot be understood; the message names the term."""


@dataclass(frozen=True)
class Term:
    """One condition. ``field`` is a row key, ``"text"`` or ``"is"``."""

    field: str
    op: str  # "=", "!=", ">", ">=", "<", "<=", "text"
    value: str | float
    negate: bool = False


@dataclass(frozen=True)
class Query:
    """Terms ANDed together; the empty query matches everything."""

    terms: tuple[Term, ...] = ()
    source: str = ""

    def __bool__(self) -> bool:
        return bool(self.terms)

    def matches(self, row: dict[str, Any]) -> bool:
        """Whether a list row passes every term."""
        return all(_matches(term, row) != term.negate for term in self.terms)

    @property
    def searches_text(self) -> bool:
        """Whether a term is a bare word: its SQL then needs the index's ``search`` table
        (``search_text``, joined on ``search_seq = seq``)."""
        return any(term.field == "text" for term in self.terms)

    def sql(self) -> tuple[str, list[Any]]:
        """A ``WHERE`` clause (``"1"`` when empty) and its parameters, over the index's
        columns (``flags`` holds `` code code `` with spaces around each code,
        ``search_text`` the lower-cased text a bare word is looked for in)."""
        clauses: list[str] = []
        parameters: list[Any] = []
        for term in self.terms:
            clause, values = _sql(term)
            clauses.append(f"NOT ({clause})" if term.negate else f"({clause})")
            parameters.extend(values)
        return (" AND ".join(clauses) or "1"), parameters


def parse(text: str) -> Query:
    """The query ``text`` states; :class:`QueryError` (exit 2) names a bad term."""
    text = text.strip()
    if not text:
        return Query()
    try:
        words = shlex.split(text)
    except ValueError:  # an unbalanced quote, e.g. searching for o'brien
        words = text.split()
    return Query(tuple(_term(word) for word in words if word and word != "-"), source=text)


def search_text(row: dict[str, Any]) -> str:
    """What a bare word is searched in, for a row: the index stores it as ``search``."""
    labels = [str(flag.get("label", "")) for flag in row.get("flags") or []]
    return " ".join([*(str(row.get(key) or "") for key in TEXT_KEYS), *labels])


def flag_codes(row: dict[str, Any]) -> str:
    """The row's flag codes as the index stores them: `` slow handler-error `` or ``""``."""
    codes = [str(flag.get("code", "")) for flag in row.get("flags") or []]
    return f" {' '.join(codes)} " if codes else ""


# --- parsing --------------------------------------------------------------------------


def _term(word: str) -> Term:
    negate = word.startswith("-") and len(word) > 1
    body = word[1:] if negate else word
    match = _TERM.match(body)
    if match is None or match["field"].lower() not in FIELDS:
        return Term("text", "text", body.lower(), negate)
    field, op, value = FIELDS[match["field"].lower()], match["op"], match["value"]
    op = "=" if op == ":" else op
    if field == "is":
        if value.lower() != "flagged" or op != "=":
            raise QueryError(f"filter {word!r}: the only is: filter is is:flagged")
        return Term("is", "=", "flagged", negate)
    if field == "flags":
        if op not in ("=", "!="):
            raise QueryError(f"filter {word!r}: flag takes flag:CODE (e.g. flag:slow)")
        return Term("flags", op, value.lower().replace(" ", "-"), negate)
    if op in (">", ">=", "<", "<=") and field not in ORDERED:
        raise QueryError(
            f"filter {word!r}: {match['field']} cannot be compared with {op}",
            hint="use > and < with latency, status, patch, generation or time",
        )
    if field in NUMERIC:
        return Term(field, op, _number(word, field, value), negate)
    return Term(field, op, value, negate)


def _number(word: str, field: str, value: str) -> float:
    text = value.strip().lower()
    scale = 1.0
    if field == "duration_ms":
        if text.endswith("ms"):
            text = text[:-2]
        elif text.endswith("s"):
            text, scale = text[:-1], 1000.0
    try:
        return float(text) * scale
    except ValueError:
        raise QueryError(f"filter {word!r}: {value!r} is not a number") from None


# --- testing a row --------------------------------------------------------------------


def _matches(term: Term, row: dict[str, Any]) -> bool:
    if term.field == "text":
        return str(term.value) in search_text(row).lower()
    if term.field == "is":
        return bool(row.get("flags"))
    if term.field == "flags":
        found = f" {term.value} " in flag_codes(row)
        return found if term.op == "=" else not found
    actual = row.get(term.field)
    if isinstance(term.value, float):
        if actual is None:
            return term.op == "!="
        return _compare(float(actual), term.op, term.value)
    text = "" if actual is None else str(actual)
    if term.op in ("=", "!="):
        equal = _glob(str(term.value)).fullmatch(text) is not None
        return equal if term.op == "=" else not equal
    return _compare(text, term.op, str(term.value))


def _compare(actual: Any, op: str, value: Any) -> bool:
    return bool(
        {
            "=": actual == value,
            "!=": actual != value,
            ">": actual > value,
            ">=": actual >= value,
            "<": actual < value,
            "<=": actual <= value,
        }[op]
    )


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE)


# --- the same test as SQL -------------------------------------------------------------


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _glob_escape(text: str) -> str:
    return "".join(f"[{char}]" if char in "*?[" else char for char in text)


def _sql(term: Term) -> tuple[str, list[Any]]:
    if term.field == "text":
        # GLOB, case-sensitive, over text stored lower-cased and a word parsed lower-cased:
        # the same test as matches() (Python's lower(), not only ASCII), and faster than LIKE.
        return "search_text GLOB ?", [f"*{_glob_escape(str(term.value))}*"]
    if term.field == "is":
        return "flags != ''", []
    if term.field == "flags":
        clause = "flags LIKE ? ESCAPE '\\'"
        pattern = f"% {_like_escape(str(term.value))} %"
        return (clause if term.op == "=" else f"NOT ({clause})"), [pattern]
    column = term.field
    if isinstance(term.value, float):
        if term.op == "!=":
            return f"({column} IS NULL OR {column} != ?)", [term.value]
        return f"{column} {term.op} ?", [term.value]
    value = str(term.value)
    if term.op in ("=", "!="):
        if "*" in value:
            # LIKE ignores ASCII case as the glob does; the column is never NULL (text "").
            clause = f"{column} LIKE ? ESCAPE '\\'"
            pattern = "%".join(_like_escape(part) for part in value.split("*"))
        else:
            clause, pattern = f"{column} = ? COLLATE NOCASE", value
        return (clause if term.op == "=" else f"NOT ({clause})"), [pattern]
    return f"{column} {term.op} ?", [value]
