"""orjson where it can, json where it cannot: same values, same errors."""

from __future__ import annotations

import json

import pytest

from webhook_dev.reviews import fast_json


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


@pytest.mark.parametrize(
    ("text", "long"),
    [
        ("9223372036854775808", True),  # 2**63: 19 digits
        ("922337203685477580", False),
        ('{"a": "1234567890123456789"}', True),  # in a string too: only costs speed
        ("12345678901234567890.5", True),
        ("123456789 0123456789", False),
        ("١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩", False),  # Arabic-Indic digits are never a JSON number
        ('"\ud800' + "1" * 19 + '"', True),  # a lone surrogate does not break the check
    ],
)
def test_long_digit_runs_are_found_in_bytes_and_str(text: str, long: bool) -> None:
    assert fast_json.has_long_digit_run(text) is long
    assert fast_json.has_long_digit_run(text.encode("utf-8", "surrogatepass")) is long


def test_a_huge_integer_in_a_str_keeps_its_digits() -> None:
    assert fast_json.loads('{"n": 123456789012345678901}') == {"n": 123456789012345678901}


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b'{"a": "\xed\xa0\x80"}', "at byte 7 (ed a0 80: an encoded UTF-16 surrogate)"),
        (b'{"a": "\xc1\xbf"}', "at byte 7 (c1 bf: an overlong form)"),
        (b'{"a": "\xf0\x80\x80\xaf"}', "at byte 7 (f0 80 80 af: an overlong form)"),
        (b'{"a": "\xfe"}', "at byte 7 (fe: invalid start byte)"),
        (b'{"n": 12345678901234567890, "a": "\xed\xbf\xbf"}', "(ed bf bf: an encoded UTF-16"),
    ],
)
def test_bytes_that_are_not_utf8_are_refused_naming_the_bytes(raw: bytes, shown: str) -> None:
    with pytest.raises(ValueError, match="not valid UTF-8") as refused:
        fast_json.loads(raw)
    assert shown in str(refused.value)


def test_valid_utf8_and_escaped_text_still_read() -> None:
    assert fast_json.loads('{"a": "é"}'.encode()) == {"a": "é"}
    assert fast_json.loads(b'{"a": "\\u00e9"}') == {"a": "é"}
