"""The statefulset sample through ``serve``, with its chat notification to a local receiver."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import Served
from tests.reviews import pod, request_review


class Receiver:
    """A local chat-robot endpoint recording what it is sent."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.messages.append((self.path, json.loads(body)))
                receiver.arrived.set()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"errcode":0}')

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/robot/send?access_token=t"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


def stateful_review(name: str, annotation: str) -> dict[str, Any]:
    obj = pod(
        name,
        labels={"ab-build-different": "true"},
        annotations={"custom-node-selector": annotation},
        ownerReferences=[{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"}],
    )
    return request_review(obj)


def test_statefulset_sample_sets_the_node_and_notifies_a_signed_chat_webhook(
    serve: Callable[..., Served], receiver: Receiver
) -> None:
    served = serve(
        "sample_webhook.statefulset_node_selector",
        "--port",
        "0",
        "--no-record",
        "--no-reload",
        env={"NOTIFY_URL": receiver.url, "NOTIFY_SECRET": "SEC"},
    )
    answer = served.review(stateful_review("db-3", '{"key":"name","even":"n1","odd":"n2"}'))
    patch = json.loads(base64.b64decode(answer["response"]["patch"]))
    assert patch == [{"op": "add", "path": "/spec/nodeSelector", "value": {"name": "n2"}}]
    assert receiver.arrived.wait(60), served.output
    path, message = receiver.messages[0]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    assert set(query) == {"access_token", "timestamp", "sign"}
    assert message["msgtype"] == "text" and "default/db-3" in message["text"]["content"]


def test_statefulset_sample_allows_a_malformed_annotation_with_a_warning(
    serve: Callable[..., Served],
) -> None:
    served = serve(
        "sample_webhook.statefulset_node_selector", "--port", "0", "--no-record", "--no-reload"
    )
    answer = served.review(stateful_review("db-0", "{not json"))
    assert answer["response"]["allowed"] is True and "patch" not in answer["response"]
    assert "custom-node-selector is not JSON" in answer["response"]["warnings"][0]
