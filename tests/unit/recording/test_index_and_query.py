"""The recording's index (build, append, stale rebuild, queries), the filter syntax, the
streaming reader and size rotation."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from webhook_dev.errors import UsageError
from webhook_dev.recording import query, stream
from webhook_dev.recording.index import INDEX_VERSION, RecordingIndex, index_path
from webhook_dev.recording.writer import Recorder, part_path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from make_recording import write_recording


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "session.jsonl"
    write_recording(path, 300)
    return path


def all_rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_old_recording_without_an_index_opens_and_gets_one(recording: Path) -> None:
    assert not index_path(recording).exists()
    index, report = RecordingIndex.open(recording)
    assert report.rebuilt and report.added == 300
    assert index.count() == 300
    assert oct(index_path(recording).stat().st_mode & 0o777) == "0o600"
    newest = index.rows(limit=1)[0]
    assert newest["id"] == "x000000299"
    assert index.get(newest["id"]).id == "x000000299"  # type: ignore[union-attr]
    index.close()
    again, second = RecordingIndex.open(recording)
    assert not second.rebuilt and second.added == 0 and again.count() == 300


def test_lines_appended_later_are_added_without_a_rebuild(recording: Path, tmp_path: Path) -> None:
    RecordingIndex.open(recording)[0].close()
    more = tmp_path / "more.jsonl"
    write_recording(more, 310, seed=3)
    with recording.open("a") as file:
        file.writelines(more.read_text().splitlines(keepends=True)[300:])
        file.write('{"version":1,"id":"half')  # a line still being written
    index, report = RecordingIndex.open(recording)
    assert not report.rebuilt and report.added == 10 and index.count() == 310


def test_a_replaced_recording_is_indexed_again(recording: Path, tmp_path: Path) -> None:
    RecordingIndex.open(recording)[0].close()
    other = tmp_path / "other.jsonl"
    write_recording(other, 50, seed=9)
    os.replace(other, recording)  # another inode, shorter
    index, report = RecordingIndex.open(recording)
    assert report.rebuilt and index.count() == 50


def test_an_index_of_an_older_version_rebuilds_itself_on_open(recording: Path) -> None:
    index, _ = RecordingIndex.open(recording)
    index.connection.execute("UPDATE meta SET value = 2 WHERE key = 'version'")
    index.connection.execute("DROP INDEX exchanges_selects")
    index.close()
    index, report = RecordingIndex.open(recording)
    assert report.rebuilt and index.count() == 300
    assert index.meta()["version"] == INDEX_VERSION


@pytest.mark.parametrize(
    ("text", "index_name"),
    [
        ("kind:Pod ns:team-a result:denied", "exchanges_selects"),
        ("ns:TEAM-A", "exchanges_selects"),
        ("result:denied", "exchanges_result"),
        ("latency>5", "exchanges_duration"),
        ("is:flagged", "exchanges_flagged"),
    ],
)
def test_select_filters_use_an_index_not_a_scan(
    recording: Path, text: str, index_name: str
) -> None:
    index, _ = RecordingIndex.open(recording)
    where, parameters = query.parse(text).sql()
    plan = index.connection.execute(
        f"EXPLAIN QUERY PLAN SELECT COUNT(*) FROM exchanges WHERE {where}", parameters
    ).fetchall()
    assert any(index_name in str(step[-1]) for step in plan), plan


def test_a_damaged_line_is_skipped_with_a_warning(recording: Path) -> None:
    lines = recording.read_text().splitlines(keepends=True)
    lines[5] = "not json\n"
    recording.write_text("".join(lines))
    index, report = RecordingIndex.open(recording)
    assert index.count() == 299 and "session.jsonl:6" in report.warnings[0]


def test_index_queries_agree_with_the_rows_filtered_in_python(recording: Path) -> None:
    index, _ = RecordingIndex.open(recording)
    everything = index.rows(limit=1000)
    for text in [
        "kind:Pod",
        "ns:team-a result:denied",
        "kind:secret -ns:default",
        "name:web-*",
        "latency>3",
        "latency<=0.002s",
        "op:UPDATE user:alice@example.com",
        "bad-1",
        "BAD-1 -Team-B",
        "web-1*",
        "secret worker",
        "is:flagged",
        "flag:slow",
        "-flag:slow",
        "user:system:*",
        "time>=2025-01-06T09:00:10",
        "status!=200",
    ]:
        parsed = query.parse(text)
        expected = [row["id"] for row in everything if parsed.matches(row)]
        assert [row["id"] for row in index.rows(parsed, limit=1000)] == expected, text
        assert index.count(parsed) == len(expected), text
    assert index.count(query.parse("ns:team-a result:denied")) > 0


@pytest.mark.parametrize("text", ["web", "bad-1 kind:Pod", "worker -team-b", "no-such-text", ""])
@pytest.mark.parametrize(("offset", "limit"), [(0, 10), (0, 1000), (7, 5), (290, 50)])
def test_a_page_and_its_count_agree_with_rows_and_count(
    recording: Path, text: str, offset: int, limit: int
) -> None:
    """One scan for a text search gives what the page and the count queries give."""
    index, _ = RecordingIndex.open(recording)
    parsed = query.parse(text)
    total, rows = index.page(parsed, offset=offset, limit=limit)
    assert total == index.count(parsed)
    assert rows == index.rows(parsed, offset=offset, limit=limit)


def test_the_query_syntax_reads_fields_operators_quotes_and_negation() -> None:
    parsed = query.parse('kind:Pod name:"my pod" -user:bob latency>1.5s words')
    fields = [(t.field, t.op, t.value, t.negate) for t in parsed.terms]
    assert fields == [
        ("kind", "=", "Pod", False),
        ("name", "=", "my pod", False),
        ("user", "=", "bob", True),
        ("duration_ms", ">", 1500.0, False),
        ("text", "text", "words", False),
    ]
    assert query.parse("system:serviceaccount").terms[0].field == "text"
    assert not query.parse("  ")
    row = {"kind": "Pod", "name": "my pod", "user": "alice", "duration_ms": 2000.0, "flags": []}
    assert not query.parse("kind:ConfigMap").matches(row)
    assert query.parse("kind:pod latency>=2000").matches(row)


@pytest.mark.parametrize("text", ["kind>3", "latency>fast", "is:slow", "flag>2"])
def test_a_bad_filter_is_a_usage_error_naming_the_term(text: str) -> None:
    with pytest.raises(UsageError, match="filter"):
        query.parse(text)


def test_the_stream_reader_gives_offsets_that_read_each_exchange_back(recording: Path) -> None:
    lines = list(stream.lines(recording))
    assert len(lines) == 300 and lines[0].offset == 0
    for line in lines[::37]:
        assert stream.read_at(recording, line.offset, line.length).id == line.exchange.id  # type: ignore[union-attr]


def test_rotation_starts_a_new_part_and_never_splits_a_line(
    recording: Path, tmp_path: Path
) -> None:
    exchanges = [line.exchange for line in stream.lines(recording)]
    target = tmp_path / "rotated.jsonl"
    recorder = Recorder(target, redact=False, max_size=100_000)
    for exchange in exchanges:
        assert exchange is not None
        recorder.on_exchange(exchange)
    recorder.close()
    parts = sorted(tmp_path.glob("rotated*.jsonl"))
    assert part_path(target, 1).name == "rotated.1.jsonl" and len(parts) > 2
    ids = []
    for part in parts:
        assert part.stat().st_size <= 100_000
        text = part.read_text()
        assert text.endswith("\n")
        ids += [json.loads(line)["id"] for line in text.splitlines()]
        index, report = RecordingIndex.open(part)
        assert not report.rebuilt and report.added == 0  # kept while writing
        assert index.count() == len(text.splitlines())
    assert sorted(ids) == sorted(e.id for e in exchanges if e is not None)


def test_line_positions_skip_blank_lines_and_agree_with_the_raw_lines(tmp_path: Path) -> None:
    path = tmp_path / "blank.jsonl"
    write_recording(path, 5)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[0], b"\n", b"  \t\n", *lines[1:], b'{"torn']))
    reader = stream.LineReader(path)
    raw = [(offset, length, number) for offset, length, number, _ in reader.raw()]
    assert raw == list(stream.LineReader(path).positions())
    assert [number for _, _, number in raw] == [1, 4, 5, 6, 7]
    assert reader.end == path.stat().st_size - len(b'{"torn')
