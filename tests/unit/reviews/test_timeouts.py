from __future__ import annotations

import pytest

from webhook_dev.reviews.timeouts import parse_go_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("2.5s", 2.5),
        (None, None),
        ("", None),
        ("10", None),
        ("10x", None),
        ("s10s", None),
    ],
)
def test_the_apiserver_timeout_parameter_is_read_as_a_go_duration(
    text: str | None, seconds: float | None
) -> None:
    assert parse_go_duration(text) == seconds
