"""How long the apiserver waits for an admission call: its ``?timeout=`` in Go's syntax. Pure.

The apiserver appends ``?timeout=<timeoutSeconds>s`` to every webhook call. The proxy
holds calls within it, replay gives the code the same budget, and the inspector flags a
call that used most of it — so all three read it here, the same way.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import parse_qsl, urlsplit

DEFAULT_TIMEOUT = 10.0  # seconds: the apiserver's default webhook timeoutSeconds
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
# Go's time.Duration is an int64 of nanoseconds: ParseDuration refuses anything longer.
MAX_DURATION = (2**63 - 1) / 1e9
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str | None) -> float | None:
    """Seconds in a Go duration such as the apiserver's ``?timeout=10s``; ``None`` if invalid.

    Invalid includes what Go refuses as overflow (longer than an int64 of nanoseconds):
    a 400-digit timeout must not reach the event loop's timers as infinity.
    """
    if not text:
        return None
    parts = _DURATION_PART.findall(text)
    if len(text) > 64 or not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    return seconds if seconds <= MAX_DURATION else None  # also inf, from 400 digits


@functools.lru_cache(maxsize=256)
def call_timeout(path_qs: str) -> float:
    """The budget of a call to ``path_qs`` (path and query): its ``?timeout=``, else 10 s.

    Cached: a recording holds a handful of distinct paths, and an index build or a replay
    asks for each of a million lines (parsing the query every time was a quarter of an
    index build's CPU)."""
    query = dict(parse_qsl(urlsplit(path_qs).query))
    return parse_go_duration(query.get("timeout")) or DEFAULT_TIMEOUT
