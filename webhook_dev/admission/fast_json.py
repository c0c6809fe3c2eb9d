"""JSON on the serving path, by orjson where it can, by the standard library where not.

orjson parses and writes a 4 KB review several times faster than :mod:`json`. It is
stricter: it refuses NaN and Infinity, integers beyond 64 bits, lone UTF-16 surrogates and
nesting past 1024 levels, all of which :mod:`json` reads. So anything orjson refuses is
handed to :mod:`json` unchanged, and the result — a value or the very error (and message)
callers always got — is exactly what it was before orjson.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """:func:`json.loads`, faster: same values, same errors."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps_compact(value: Any) -> str:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``, faster.

    Values orjson cannot write (non-string keys, huge integers, lone surrogates) go to
    :mod:`json`. Floats may be spelled differently (``1e+16`` / ``1e16``), and NaN and
    Infinity (which only a review orjson refused, read by :mod:`json`, can hold, and which
    :mod:`json` writes as the non-JSON ``NaN``) come out as ``null``.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
