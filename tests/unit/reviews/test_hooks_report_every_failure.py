"""Every subscriber failure is reported, rate-limited (issue 15, finding 5)."""

from __future__ import annotations

import pytest

from webhook_dev.reviews import exchange as exchange_module
from webhook_dev.reviews.exchange import Exchange, Hooks, now


class Broken:
    def __init__(self) -> None:
        self.calls = 0

    def on_exchange(self, exchange: Exchange) -> None:
        self.calls += 1
        raise ValueError(f"bad exchange {exchange.id}")

    def __repr__(self) -> str:
        return "Broken()"


class Fine:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_exchange(self, exchange: Exchange) -> None:
        self.seen.append(exchange.id)


def test_each_failure_is_counted_and_reported_and_later_subscribers_still_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter([0.0, 0.1, 0.2, 1.5, 1.6])
    monkeypatch.setattr(exchange_module.time, "monotonic", lambda: next(clock))
    broken, fine = Broken(), Fine()
    hooks = Hooks([broken, fine])
    for number in range(5):
        hooks.exchange(Exchange(id=str(number), started=now(), path="/"))
    assert fine.seen == ["0", "1", "2", "3", "4"]
    assert hooks.failures(broken) == 5
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("webhook-dev: subscriber")]
    assert len(lines) == 2  # the first, then one a second later folding two more in
    assert "(1 failures so far)" in lines[0] and "Traceback" in err
    assert "(4 failures so far) (and 2 more since the last report)" in lines[1]
    assert err.count("Traceback") == 1
