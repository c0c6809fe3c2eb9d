"""JSON on the serving path, by orjson where it can, by the standard library where not.

orjson parses and writes a 4 KB review several times faster than :mod:`json`. It is
stricter: it refuses NaN and Infinity, lone UTF-16 surrogates and nesting past 1024
levels, which :mod:`json` reads, and it reads integers beyond 64 bits as floats. So a
text with such a number, or one orjson refuses, is handed to :mod:`json` unchanged, and
the result — a value or the very error (and message)
callers always got — is exactly what it was before orjson.

One difference from :mod:`json`, on purpose: bytes must be valid UTF-8 (RFC 8259 8.1; the
apiserver sends nothing else). :func:`json.loads` decodes bytes with ``surrogatepass``, so
an encoded surrogate (``ED A0 80``) came through as a lone ``\\ud800`` that no recording
line, subscriber or index can write; and it guesses UTF-16 or UTF-32 from the first bytes.
Such bytes raise :class:`InvalidUtf8` (a :class:`ValueError`) naming the offending bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# orjson reads an integer past 64 bits as a float, silently: 19 digits in a row could be
# one (2**63 has 19), so such a text goes to json (digits inside a string only cost speed).
# Found by mapping every ASCII digit to "0" and every other byte to " " and looking for 19
# zeros: ~5 us for a 4 KB review, where the regex ``\d{19}`` took ~150 us — more than
# json.loads itself. A JSON number is ASCII digits only, so other scripts' digits (which
# ``\d`` on a str would match) can never be one.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_RUN = b"0" * 19


def has_long_digit_run(data: bytes | str) -> bool:
    """Whether ``data`` holds 19 ASCII digits in a row (a number orjson may misread)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return _LONG_RUN in data.translate(_DIGITS_AS_ZEROS)


class InvalidUtf8(ValueError):
    """Bytes that are not UTF-8, so cannot be JSON text."""


# Well-formed UTF-8 sequences spell no surrogate (ED A0..BF ..) and use the shortest form
# (no C0/C1 lead, no E0 80..9F, no F0 80..8F): naming the two mistakes a fuzzer (or a
# hand-written encoder) makes tells the sender what to fix.
_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")
_OVERLONG = re.compile(rb"[\xc0\xc1]|\xe0[\x80-\x9f]|\xf0[\x80-\x8f]")


def decode_utf8(data: bytes) -> str:
    """``data`` as text, refusing anything but well-formed UTF-8.

    :raises InvalidUtf8: with the offset and the bytes, e.g. ``not valid UTF-8 at byte 17
        (ed a0 80: an encoded UTF-16 surrogate)``.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = data[error.start : error.start + 4]
        if _SURROGATE.match(bad):
            what, bad = "an encoded UTF-16 surrogate", bad[:3]
        elif _OVERLONG.match(bad):
            what, bad = "an overlong form", bad[: 2 if bad[0] < 0xE0 else bad[0] // 16 - 11]
        else:
            what, bad = error.reason, data[error.start : error.end]
        raise InvalidUtf8(
            f"not valid UTF-8 at byte {error.start} ({bad.hex(' ')}: {what}); JSON is sent as UTF-8"
        ) from None


def loads(data: bytes | str) -> Any:
    """:func:`json.loads`, faster: same values, same errors, except that bytes must be
    UTF-8 (:class:`InvalidUtf8`). orjson checks the bytes itself, so valid text pays
    nothing for the check."""
    if has_long_digit_run(data):
        return json.loads(data if isinstance(data, str) else decode_utf8(data))
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data if isinstance(data, str) else decode_utf8(data))


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
