"""Mutating webhook: place StatefulSet Pods on nodes by the parity of their ordinal.

For Pods labelled ``ab-build-different: "true"`` and owned by a StatefulSet, reads the
annotation ``custom-node-selector: '{"key":"name","even":"node1","odd":"node2"}'``, takes
the ordinal from the label ``apps.kubernetes.io/pod-index`` (or the name's ``-N``
suffix), and sets ``nodeSelector[key]`` to the even or odd value, keeping other keys.
A missing or malformed annotation lets the Pod through with a warning — never a 500.

Each change can be announced to a chat webhook (DingTalk's robot format; any endpoint
that takes a JSON POST works): set ``NOTIFY_URL``, and ``NOTIFY_SECRET`` for DingTalk's
signed URLs (``timestamp`` and ``sign`` = base64 HMAC-SHA256 of ``"{timestamp}\\n{secret}"``).
Off unless ``NOTIFY_URL`` is set; sending never delays or fails an admission.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import time
import urllib.parse
from typing import Any

import aiohttp
from aiohttp import web

from sample_webhook.admission import MAX_REVIEW_BYTES, Answer, allow, escape, handler

LABEL = "ab-build-different"
ANNOTATION = "custom-node-selector"
INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL_SUFFIX = re.compile(r"-(\d+)$")
log = logging.getLogger(__name__)


def ordinal_of(pod: dict[str, Any]) -> int | None:
    metadata = pod.get("metadata") or {}
    index = (metadata.get("labels") or {}).get(INDEX_LABEL)
    if isinstance(index, str) and index.isdigit():
        return int(index)
    match = _ORDINAL_SUFFIX.search(metadata.get("name") or "")
    return int(match.group(1)) if match else None


def read_selector(annotation: str | None) -> tuple[dict[str, str] | None, str | None]:
    """``(selector, None)`` or ``(None, warning)`` for a missing or malformed annotation."""
    if annotation is None:
        return None, f"annotation {ANNOTATION} is missing; nodeSelector left as it is"
    try:
        selector = json.loads(annotation)
    except ValueError as error:
        return None, f"annotation {ANNOTATION} is not JSON ({error}); nodeSelector left as it is"
    if not isinstance(selector, dict) or not all(
        isinstance(selector.get(field), str) and selector.get(field)
        for field in ("key", "even", "odd")
    ):
        return None, (
            f'annotation {ANNOTATION} needs {{"key": ..., "even": ..., "odd": ...}} as '
            "non-empty strings; nodeSelector left as it is"
        )
    return selector, None


def node_selector_patch(pod: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The patch and the warnings for one Pod (``[]`` when it is not ours to place)."""
    metadata = pod.get("metadata") or {}
    if (metadata.get("labels") or {}).get(LABEL) != "true":
        return [], []
    owners = metadata.get("ownerReferences") or []
    if not any(owner.get("kind") == "StatefulSet" for owner in owners):
        return [], []
    selector, warning = read_selector((metadata.get("annotations") or {}).get(ANNOTATION))
    if selector is None:
        return [], [warning or ""]
    ordinal = ordinal_of(pod)
    if ordinal is None:
        return [], [f"cannot tell the ordinal of Pod {metadata.get('name')!r}; left as it is"]
    value = selector["even"] if ordinal % 2 == 0 else selector["odd"]
    current = (pod.get("spec") or {}).get("nodeSelector")
    if isinstance(current, dict):
        if current.get(selector["key"]) == value:
            return [], []
        path = f"/spec/nodeSelector/{escape(selector['key'])}"
        return [{"op": "add", "path": path, "value": value}], []
    return [{"op": "add", "path": "/spec/nodeSelector", "value": {selector["key"]: value}}], []


def signed_url(url: str, secret: str | None, *, now_ms: int | None = None) -> str:
    """DingTalk's signed robot URL: ``&timestamp=..&sign=..`` (unchanged without a secret)."""
    if not secret:
        return url
    timestamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    sign = urllib.parse.quote_plus(base64.b64encode(digest.digest()).decode())
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}timestamp={timestamp}&sign={sign}"


class Notifier:
    """Posts one chat message per change, in the background, with a short timeout."""

    def __init__(self, url: str | None, secret: str | None) -> None:
        self.url, self.secret = url, secret
        self._tasks: set[asyncio.Task[None]] = set()

    def announce(self, text: str) -> None:
        if not self.url:
            return
        task = asyncio.create_task(self._send(text))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, text: str) -> None:
        assert self.url is not None
        message = {"msgtype": "text", "text": {"content": text}}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                url = signed_url(self.url, self.secret)
                async with session.post(url, json=message) as response:
                    if response.status >= 300:
                        log.warning("notification refused: HTTP %s", response.status)
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("notification failed: %r", error)

    async def close(self, _: web.Application | None = None) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)


def create_app() -> web.Application:
    notifier = Notifier(os.environ.get("NOTIFY_URL"), os.environ.get("NOTIFY_SECRET"))

    def decide(request: dict[str, Any]) -> Answer:
        pod = request.get("object")
        if (request.get("kind") or {}).get("kind") != "Pod" or not isinstance(pod, dict):
            return allow()
        patch, warnings = node_selector_patch(pod)
        if patch:
            name = (pod.get("metadata") or {}).get("name") or request.get("name") or "?"
            value = patch[0]["value"]
            shown = value if isinstance(value, str) else json.dumps(value)
            notifier.announce(f"Pod {request.get('namespace')}/{name}: nodeSelector {shown}")
        return allow(patch, warnings)

    app = web.Application(client_max_size=MAX_REVIEW_BYTES)
    app.router.add_post("/mutate", handler(decide))
    app.on_cleanup.append(notifier.close)
    return app


app = create_app()
