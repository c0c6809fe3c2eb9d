"""replay --jobs keeps the report in recorded order; --where and --sample pick subsets."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path

from webhook_dev.admission.review import build_response, parse_request
from webhook_dev.recording import query
from webhook_dev.replay.batch import Selection, replay_in_order, selected
from webhook_dev.serving.upstream import UpstreamRequest, UpstreamResponse

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from make_recording import write_recording


class Jittery:
    """Answers allowed after a random delay, so answers finish out of order."""

    generation = 1

    async def send(self, request: UpstreamRequest, deadline: float) -> UpstreamResponse:
        await asyncio.sleep(random.random() / 200)
        review = json.loads(request.body)
        answer = build_response(parse_request(review), allowed=True)
        return UpstreamResponse(status=200, body=json.dumps(answer).encode())


async def wheres(path: Path, selection: Selection, jobs: int) -> list[str]:
    results = replay_in_order(selected([path], selection), [Jittery(), Jittery()], jobs=jobs)  # type: ignore[list-item]
    return [item.where async for item in results if hasattr(item, "where")]


async def test_jobs_keep_the_recorded_order(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    write_recording(path, 120)
    assert await wheres(path, Selection(), 8) == [f"{path}:{n}" for n in range(1, 121)]


async def test_where_and_sample_pick_a_repeatable_subset_in_order(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    write_recording(path, 200)
    denied = await wheres(path, Selection(where=query.parse("result:denied")), 4)
    names = [
        json.loads(line)["request"]["request"]["name"] for line in path.read_text().splitlines()
    ]
    assert denied == [f"{path}:{n}" for n, name in enumerate(names, 1) if name.startswith("bad")]
    sample = await wheres(path, Selection(sample=25), 4)
    assert len(sample) == 25 and sample == sorted(sample, key=lambda w: int(w.rsplit(":", 1)[1]))
    assert sample == await wheres(path, Selection(sample=25), 1)
    both = await wheres(path, Selection(where=query.parse("result:denied"), sample=5), 2)
    assert len(both) == 5 and set(both) <= set(denied)
