"""Wait for something the tests cannot be told about: poll it, and fail saying what."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str,
    ignoring: tuple[type[Exception], ...] = (),
    details: Callable[[], str] | None = None,
) -> T:
    """The first truthy value ``probe()`` returns within ``timeout`` seconds.

    An exception in ``ignoring`` counts as "not yet" (a webhook that does not answer yet).
    Raises AssertionError naming ``what`` and the last value (or exception) seen, followed
    by ``details()`` when given (a process's output at that moment, say).
    """
    deadline = time.monotonic() + timeout
    while True:
        last: object
        try:
            value = probe()
        except ignoring as error:
            last = error
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            more = f"\n{details()}" if details is not None else ""
            raise AssertionError(f"not within {timeout}s: {what} (last: {last!r}){more}")
        time.sleep(interval)
