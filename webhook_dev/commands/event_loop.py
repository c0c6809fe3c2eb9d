"""The event loop webhook-dev's own processes run on.

uvloop's TLS and socket I/O are compiled, asyncio's are mostly Python: on the lab it took
``up``'s p50 at concurrency 16 from x1.36 to x1.18 of the manual ``ssh -R`` path
(docs/benchmarks.md). The user's app keeps the stock loop in its worker process, so it
runs the way they ship it; uvloop is only for the proxy, tunnel and inspector.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop where it is installed (not on Windows), else the stock loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
