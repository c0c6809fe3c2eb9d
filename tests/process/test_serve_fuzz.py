"""Hostile input against ``serve`` as a process: a clear 4xx, never a 500 or a traceback,
and every subscriber (console, recorder, inspector) survives (issue 15, findings 5 and 6).

Bounded and deterministic: a fixed seed, :data:`CASES` requests, each with a timeout.
"""

from __future__ import annotations

import copy
import gzip
import http.cookiejar
import json
import random
import re
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import Served
from tests.reviews import request_review
from webhook_dev.recording.reader import read_recording

SEED = 15
CASES = 300
WRONG_VALUES: list[Any] = ["Pod", 7, 1.5, True, [], ["a"], {"x": 1}, None, "\ud800"]
FIELDS = [
    ("kind",),
    ("resource",),
    ("userInfo",),
    ("userInfo", "username"),
    ("userInfo", "groups"),
    ("userInfo", "extra"),
    ("operation",),
    ("namespace",),
    ("name",),
    ("object",),
    ("oldObject",),
    ("dryRun",),
    ("options",),
    ("kind", "kind"),
    ("object", "metadata"),
    ("object", "metadata", "name"),
    ("subResource",),
    ("requestKind",),
]


def _mutated(rng: random.Random) -> tuple[str, dict[str, str], bytes]:
    """One hostile request: path, extra headers, body."""
    review = request_review()
    choice = rng.randrange(8)
    if choice <= 3:  # a wrongly typed (or lone-surrogate) field
        field = rng.choice(FIELDS)
        target = review["request"]
        for part in field[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[field[-1]] = copy.deepcopy(rng.choice(WRONG_VALUES))
        return "/mutate?timeout=10s", {}, json.dumps(review).encode()
    if choice == 4:  # nested deeply
        depth = rng.choice([300, 1000, 5000])
        review["request"]["object"]["spec"]["x"] = "__DEEP__"
        body = json.dumps(review).replace('"__DEEP__"', "[" * depth + "]" * depth)
        return "/mutate?timeout=10s", {}, body.encode()
    if choice == 5:  # an encoding that does not match the body
        encoding = rng.choice(["gzip", "deflate", "br", "x-unknown"])
        return "/mutate?timeout=10s", {"Content-Encoding": encoding}, json.dumps(review).encode()
    if choice == 6:  # timeouts Go would refuse, or never produce
        timeout = rng.choice(["9" * 400 + "s", "1e400s", "-1s", "NaNs", "10", "1" * 30 + "h"])
        return f"/mutate?timeout={timeout}", {}, json.dumps(review).encode()
    return "/mutate?timeout=10s", {}, bytes(rng.randrange(256) for _ in range(rng.randrange(64)))


def _post(served: Served, path: str, headers: dict[str, str], body: bytes) -> int:
    head = "".join(
        f"{k}: {v}\r\n" for k, v in {"Content-Type": "application/json", **headers}.items()
    )
    return served.post_raw(path, head.encode(), body)[0]


def test_hostile_reviews_get_a_4xx_and_no_subscriber_ever_fails(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    record = tmp_path / "rec.jsonl"
    served = serve(
        "sample_webhook.sidecar_injector", "--port", "0", "--record", str(record), "--no-reload"
    )
    rng = random.Random(SEED)
    statuses: dict[int, int] = {}
    for number in range(CASES):
        path, headers, body = _mutated(rng)
        status = _post(served, path, headers, body)
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (number, path, headers, body[:300], served.output[-2000:])
        if number % 50 == 0:
            assert served.review(request_review())["response"]["allowed"] is True
    assert served.review(request_review())["response"]["allowed"] is True
    assert sum(count for status, count in statuses.items() if 400 <= status < 500) > CASES / 2
    output = served.output
    assert "Traceback" not in output and "subscriber" not in output, output[-3000:]
    exchanges, warnings = read_recording(record)  # every line the recorder wrote reads back
    assert warnings == [] and exchanges
    assert _inspector_list_status(served) == 200


def test_gzip_and_deflate_bodies_that_do_decode_are_read(
    serve: Callable[..., Served],
) -> None:
    served = serve("sample_webhook.sidecar_injector", "--port", "0", "--no-record", "--no-reload")
    body = json.dumps(request_review()).encode()
    assert _post(served, "/mutate", {"Content-Encoding": "gzip"}, gzip.compress(body)) == 200
    assert _post(served, "/mutate", {"Content-Encoding": "deflate"}, zlib.compress(body)) == 200
    bomb = gzip.compress(b" " * (64 * 1024 * 1024))  # 64 MiB of spaces, 64 KiB on the wire
    assert _post(served, "/mutate", {"Content-Encoding": "gzip"}, bomb) == 413


def _inspector_list_status(served: Served) -> int:
    line = served.wait_for(r"inspector http://")
    url = re.search(r"(http://\S+)", line)
    assert url is not None
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    opener.open(url.group(1), timeout=30).read()
    base = url.group(1).split("/?")[0]
    with opener.open(f"{base}/api/exchanges", timeout=30) as response:
        json.loads(response.read())
        return int(response.status)
