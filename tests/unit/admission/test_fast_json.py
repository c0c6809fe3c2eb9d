"""orjson where it can, json where it cannot: same values, same errors."""

from __future__ import annotations

import json

import pytest

from webhook_dev.admission import fast_json


@pytest.mark.parametrize(
    "text",
    [
        '{"a": [1, 2.5, "é", null, true]}',
        '{"n": NaN}',
        '{"big": 123456789012345678901234567890}',
        '"\\ud800"',
    ],
)
def test_loads_gives_what_json_gives(text: str) -> None:
    expected = json.loads(text)
    got = fast_json.loads(text.encode())
    assert got == expected or (got != got and expected != expected)  # NaN is not NaN
    assert repr(got) == repr(expected)


def test_too_deep_is_json_s_recursion_error() -> None:
    with pytest.raises(RecursionError):
        fast_json.loads(b"[" * 100_000 + b"]" * 100_000)


def test_loads_raises_json_errors() -> None:
    with pytest.raises(json.JSONDecodeError, match="Expecting value"):
        fast_json.loads(b"<xml/>")


def test_dumps_compact_is_json_compact_and_falls_back() -> None:
    value = {"a": [1, "é", None], "b": {"c": True}}
    assert fast_json.dumps_compact(value) == json.dumps(
        value, separators=(",", ":"), ensure_ascii=False
    )
    odd = {"big": 2**70, "s": "\ud800"}
    assert fast_json.dumps_compact(odd) == json.dumps(
        odd, separators=(",", ":"), ensure_ascii=False
    )
