"""Bytes no client should send, and clients that leave early, as raw bytes on a socket
(issue 23, findings 2, 3 and 4): never a 500 of ours, never invalid Unicode past the door,
and a client's disconnect told apart from webhook-dev's failures."""

from __future__ import annotations

import json
import re
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Served
from tests.reviews import request_review
from webhook_dev.recording.reader import read_recording


def _connect(served: Served) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    return served.tls_context().wrap_socket(raw, server_hostname="127.0.0.1")


def _post_raw(served: Served, head: bytes, body: bytes) -> tuple[int, bytes]:
    return served.post_raw("/mutate?timeout=10s", head, body)


def _review_with_raw_name(raw_name: bytes) -> bytes:
    """A valid review whose ``request.name`` holds ``raw_name`` as raw bytes."""
    review = request_review()
    review["request"]["name"] = "__NAME__"
    return json.dumps(review).encode().replace(b"__NAME__", raw_name)


@pytest.fixture
def served(serve: Callable[..., Served], tmp_path: Path) -> Served:
    return serve(
        "sample_webhook.sidecar_injector",
        "--port", "0", "--record", str(tmp_path / "rec.jsonl"), "--no-reload",
    )  # fmt: skip


def test_a_non_ascii_byte_in_a_header_reaches_the_worker_unchanged(served: Served) -> None:
    head = b"Content-Type: application/js\xd9n\r\nX-Trace: caf\xe9\r\n"
    status, body = _post_raw(served, head, json.dumps(request_review()).encode())
    assert status == 200, body
    assert json.loads(body)["response"]["allowed"] is True
    served.wait_for(r"Pod default/web-0\s+CREATE\s+allowed")
    assert "failed on this call" not in served.output


@pytest.mark.parametrize(
    ("raw_name", "shown"),
    [
        (b"web-\xed\xa0\x80", "ed a0 80: an encoded UTF-16 surrogate"),
        (b"web-\xc0\xaf", "c0 af: an overlong form"),
        (b"web-\xe0\x80\xaf", "e0 80 af: an overlong form"),
        (b"web-\xff", "ff: invalid start byte"),
        (b"web-\xe2\x82", "invalid continuation byte"),
    ],
)
def test_invalid_utf8_in_the_body_is_a_clear_400_and_never_recorded(
    served: Served, tmp_path: Path, raw_name: bytes, shown: str
) -> None:
    status, body = _post_raw(
        served, b"Content-Type: application/json\r\n", _review_with_raw_name(raw_name)
    )
    assert status == 400, body
    assert b"not valid UTF-8" in body and shown.encode() in body, body
    served.wait_for(rf"400 .*not valid UTF-8 .*{re.escape(shown)}")
    assert served.review(request_review())["response"]["allowed"] is True
    served.wait_for(r"Pod default/web-0\s+CREATE\s+allowed")
    exchanges, warnings = read_recording(tmp_path / "rec.jsonl")
    assert (len(exchanges), warnings) == (1, [])  # only the valid call
    assert "Traceback" not in served.output and "subscriber" not in served.output


def test_a_client_that_leaves_mid_body_gets_one_quiet_line_not_a_500(served: Served) -> None:
    body = json.dumps(request_review()).encode()
    for _ in range(3):
        with _connect(served) as tls:
            tls.sendall(
                b"POST /mutate?timeout=10s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:100]
            )
    assert served.review(request_review())["response"]["allowed"] is True
    served.wait_for(r"Pod default/web-0\s+CREATE\s+allowed")
    closed = [
        line
        for line in served.output.splitlines()
        if f"the client closed the connection before sending all of its {len(body)}-byte body"
        in line
    ]
    assert len(closed) == 3, served.output[-2000:]
    assert "500" not in "".join(closed) and "failed on this call" not in served.output
