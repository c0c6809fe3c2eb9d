"""A full disk never tears the recording, and says what it cost (issue 15, finding 3).

A real 1 MiB tmpfs (needs root, as the lab does) is filled while ``serve`` records to it.
"""

from __future__ import annotations

import contextlib
import errno
import http.cookiejar
import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Served
from tests.reviews import request_review
from webhook_dev.recording.reader import read_recording


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted after the test even when it fails.

    Room enough for the recording's index to open (its SQLite file, write-ahead log and
    32 KiB shared-memory file): at 64 KiB it sometimes could not, gave up, and freed its
    log, so the first call's line was lost before the test filled the disk.
    """
    if os.geteuid() != 0 and os.environ.get("CI") != "true":
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount_point)],
        check=True,
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"x" * 512)
    with pytest.raises(OSError) as full:
        (directory / "probe").write_bytes(b"x" * 8192)
    assert full.value.errno == errno.ENOSPC
    return filler


def test_a_full_disk_leaves_only_whole_lines_and_says_how_many_were_lost(
    serve: Callable[..., Served], small_disk: Path
) -> None:
    record = small_disk / "rec.jsonl"
    served = serve(
        "sample_webhook.sidecar_injector", "--port", "0", "--record", str(record), "--no-reload"
    )
    for uid in ("before-1", "before-2"):
        served.review(request_review(uid=uid))
    _shown(served, 2)  # recorded (the recorder comes first) just after the answer
    filler = _fill(small_disk)
    for number in range(5):
        served.review(request_review(uid=f"lost-{number}"))  # serving goes on regardless
    served.wait_for(r"recording to .* failed \(No space left on device\)")
    _shown(served, 7)  # all five were tried while the disk was full
    # The page's count is live while the disk is full, not the first failure's 1.
    recording = _inspector_recording(served)
    assert (recording["failing"], recording["missed"]) == (True, 5), recording
    assert "5 exchanges not recorded so far" in recording["message"]
    assert served.output.count("failed (No space left on device)") == 1  # said once
    filler.unlink()
    (small_disk / "probe").unlink(missing_ok=True)
    for uid in ("after-1", "after-2"):
        served.review(request_review(uid=uid))
    served.wait_for(r"recording to .* resumed: 5 exchanges not recorded since")
    _shown(served, 9)
    exchanges, warnings = read_recording(record)
    assert warnings == []  # no torn line, no glued line
    uids = [exchange.request["uid"] for exchange in exchanges]
    assert uids == ["before-1", "before-2", "after-1", "after-2"]
    assert record.read_bytes().endswith(b"\n")
    assert "Traceback" not in served.output


def _inspector_recording(served: Served) -> dict[str, object]:
    """The recording state the inspector page shows (its list's answer)."""
    line = served.wait_for(r"inspector http://")
    url = re.search(r"(http://\S+)", line)
    assert url is not None
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    opener.open(url.group(1), timeout=30).read()  # the token becomes a cookie
    base = url.group(1).split("/?")[0]
    with opener.open(f"{base}/api/exchanges", timeout=30) as response:
        recording: dict[str, object] = json.loads(response.read())["recording"]
    return recording


def _shown(served: Served, count: int) -> None:
    """Wait until the console has shown ``count`` allowed calls."""
    deadline = time.monotonic() + 30
    while len(re.findall(r"CREATE\s+allowed", served.output)) < count:
        assert time.monotonic() < deadline, served.output[-2000:]
        time.sleep(0.02)
