"""A spare worker waits beside the serving one for reloads; replay, which never reloads,
starts none (one process and ~35 MB less a replay shard)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from tests.reviews import request_review
from webhook_dev.serving.upstream import UpstreamRequest
from webhook_dev.serving.upstreams.app import AppUpstream

REPO = Path(__file__).resolve().parents[2]


def _children() -> set[int]:
    pid = os.getpid()
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


async def _serving_children(keep_spare: bool) -> int:
    before = _children()
    upstream = AppUpstream("sample_webhook.sidecar_injector", cwd=REPO, keep_spare=keep_spare)
    await upstream.start(require_ready=True)
    try:
        body = json.dumps(request_review()).encode()
        request = UpstreamRequest("/mutate", body, {"Content-Type": "application/json"})
        loop = asyncio.get_running_loop()
        answer = await upstream.send(request, loop.time() + 10)
        assert answer.status == 200, answer.error
        for _ in range(40):  # a spare starts after the first worker is ready: give it 2 s
            await asyncio.sleep(0.05)
            if len(_children() - before) >= 2:
                break
        return len(_children() - before)
    finally:
        await upstream.close()


def test_serving_keeps_a_spare_and_replay_does_not() -> None:
    assert asyncio.run(_serving_children(keep_spare=True)) == 2
    assert asyncio.run(_serving_children(keep_spare=False)) == 1
