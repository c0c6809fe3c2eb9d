"""A write that fails part way leaves the file as it was (issue 15, finding 3)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tests.reviews import request_review
from webhook_dev.recording import writer
from webhook_dev.recording.reader import read_recording
from webhook_dev.reviews.exchange import (
    Event,
    Exchange,
    Hooks,
    RecordingFailed,
    RecordingResumed,
    now,
)


class Events:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)


def _exchange(uid: str) -> Exchange:
    return Exchange(id=uid, started=now(), path="/", request_review=request_review(uid=uid))


def test_a_partial_write_is_truncated_back_counted_and_the_resumption_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = Events()
    recorder = writer.Recorder(tmp_path / "rec.jsonl", redact=False, hooks=Hooks([events]))
    recorder.on_exchange(_exchange("one"))
    real_write = os.write
    calls = {"n": 0}

    def half_then_full(fd: int, data: bytes | memoryview) -> int:
        calls["n"] += 1
        if calls["n"] % 2:
            return real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer.os, "write", half_then_full)
    recorder.on_exchange(_exchange("lost-1"))
    recorder.on_exchange(_exchange("lost-2"))
    monkeypatch.setattr(writer.os, "write", real_write)
    recorder.on_exchange(_exchange("two"))
    recorder.close()
    exchanges, warnings = read_recording(tmp_path / "rec.jsonl")
    assert warnings == [] and [e.id for e in exchanges] == ["one", "two"]
    assert recorder.missed == 2 and recorder.recorded == 2
    failed = [e for e in events.events if isinstance(e, RecordingFailed)]
    resumed = [e for e in events.events if isinstance(e, RecordingResumed)]
    assert len(failed) == 1 and failed[0].error == "No space left on device"
    assert len(resumed) == 1 and resumed[0].missed == 2
