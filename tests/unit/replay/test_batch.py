"""replay --jobs keeps the report in recorded order; --where and --sample pick subsets."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path

import pytest

from webhook_dev.recording import query
from webhook_dev.replay.batch import Selection, replay_in_order, selected, selected_raw
from webhook_dev.reviews.admission import build_response, parse_request
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


async def wheres(path: Path, selection: Selection, jobs: int, strict: bool = True) -> list[str]:
    items = selected([path], selection, strict=strict)
    results = replay_in_order(items, [Jittery(), Jittery()], jobs=jobs)  # type: ignore[list-item]
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


async def test_where_reads_positions_from_an_index_when_there_is_one(tmp_path: Path) -> None:
    from webhook_dev.recording.index import RecordingIndex, index_path

    path = tmp_path / "r.jsonl"
    write_recording(path, 200)
    choices = [
        Selection(where=query.parse("result:denied ns:team-*")),
        Selection(where=query.parse("kind:Pod -op:CREATE"), sample=20),
    ]
    streamed = [await wheres(path, selection, 3) for selection in choices]
    raw = [list(selected_raw([path], selection, strict=False)) for selection in choices]
    RecordingIndex.open(path)[0].close()
    assert index_path(path).exists()
    assert [await wheres(path, selection, 3, strict=False) for selection in choices] == streamed
    assert all(streamed)
    indexed = [list(selected_raw([path], selection, strict=False)) for selection in choices]
    # Without the index, --where alone is left to the shards (every line goes out).
    assert len(raw[0]) == 200 and [item[1] for item in indexed[0]] == [
        int(where.rsplit(":", 1)[1]) for where in streamed[0]
    ]
    assert indexed[1] == raw[1]


async def test_sample_alone_takes_its_positions_from_an_index_and_picks_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webhook_dev.recording import stream
    from webhook_dev.recording.index import RecordingIndex

    path = tmp_path / "r.jsonl"
    write_recording(path, 300)
    selection = Selection(sample=30)
    scanned = list(selected_raw([path], selection, strict=False))
    RecordingIndex.open(path)[0].close()

    def no_scan(self: object) -> None:
        raise AssertionError("the file was scanned although it has an index")

    monkeypatch.setattr(stream.LineReader, "positions", no_scan)
    assert list(selected_raw([path], selection, strict=False)) == scanned
    assert len(scanned) == 30
