"""Counting calls: how many, when the last came, and how many a second lately.

One small subscriber for every place that shows or reports call counts (``up``'s live
panel, the inspector's feed, the session's heartbeat in the cluster), so they count the
same way.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import datetime

from webhook_dev.reviews.exchange import Exchange

RATE_WINDOW_SECONDS = 10.0


class CallStats:
    """Subscriber: counts every exchange, refused bad input included (it was a call).

    Apart from them: ``client_closed``, calls whose client gave up before sending the
    whole request (nothing was answered; not a failure of webhook-dev or the webhook),
    and ``failed``, calls answered with a 5xx (the apiserver fails those calls).

    :param clock: monotonic seconds, for the rate (tests pass their own).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        window_seconds: float = RATE_WINDOW_SECONDS,
    ) -> None:
        self.calls = 0
        self.client_closed = 0
        self.failed = 0
        self.last_call: datetime | None = None  # when the last exchange started
        self.window_seconds = window_seconds
        self._clock = clock
        self._arrivals: deque[float] = deque()

    def __repr__(self) -> str:
        return f"<CallStats {self.calls} calls>"

    def on_exchange(self, exchange: Exchange) -> None:
        self.calls += 1
        if exchange.client_closed:
            self.client_closed += 1
        elif exchange.http_status >= 500:
            self.failed += 1
        self.last_call = exchange.started
        self._arrivals.append(self._clock())
        self._forget_old()

    def per_second(self) -> float:
        """Calls a second over the last :attr:`window_seconds`."""
        self._forget_old()
        return len(self._arrivals) / self.window_seconds

    def _forget_old(self) -> None:
        since = self._clock() - self.window_seconds
        while self._arrivals and self._arrivals[0] < since:
            self._arrivals.popleft()
