"""ConversionReviews through ``serve``: answered by the local code, checked as the
apiserver checks them, recorded beside admission calls, and replayed by meaning."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.conftest import Project, Served, run_webhook_dev
from tests.reviews import conversion_review, request_review, website

WEBSITE = "sample_webhook.website"
SAMPLE_SOURCE = Path(__file__).parents[2] / "sample_webhook" / "website.py"
CONVERT = "/convert?timeout=30s"


def record_operator_session(serve: Callable[..., Served], record: Path) -> None:
    """Two conversions (one of two objects, one back to v1) and one defaulting call."""
    served = serve(WEBSITE, "--port", "0", "--record", str(record), "--no-reload")
    served.review(conversion_review(website("a"), website("b"), uid="to-v2"), path=CONVERT)
    v2 = website("c", "v2", address="example.org:8443", tls=True)
    served.review(
        conversion_review(v2, desired="samples.webhook-dev.io/v1", uid="to-v1"), path=CONVERT
    )
    unported = website("d", host="example.net")
    served.review(
        request_review(unported, kind="Website", namespace="websites", uid="default-d"),
        path="/mutate?timeout=10s",
    )
    served.wait_for(r"Website websites/d")
    served.stop()


def test_a_conversion_is_answered_by_the_local_code_and_shown_on_one_line(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    served = serve(WEBSITE, "--port", "0", "--record", str(tmp_path / "rec.jsonl"))
    answer = served.review(conversion_review(website("a"), website("b")), path=CONVERT)
    response = answer["response"]
    assert answer["kind"] == "ConversionReview" and response["uid"] == "c0nv-uid"
    assert response["result"] == {"status": "Success"}
    assert [o["spec"] for o in response["convertedObjects"]] == [
        {"address": "example.com:8080"}
    ] * 2
    served.wait_for(
        r"Website websites/a \(\+1\)  CONVERT to samples\.webhook-dev\.io/v2  converted"
    )
    lines = (tmp_path / "rec.jsonl").read_text().splitlines()
    recorded = json.loads(lines[-1])
    assert recorded["request"]["kind"] == "ConversionReview"
    assert recorded["response"]["response"]["convertedObjects"][0]["apiVersion"].endswith("/v2")


def test_a_conversion_the_apiserver_would_refuse_is_flagged_under_its_line(
    serve: Callable[..., Served], project: Project
) -> None:
    project.write(
        SAMPLE_SOURCE.read_text().replace(
            'converted["apiVersion"] = api_version', 'converted["apiVersion"] = V1'
        )
    )
    served = serve("hook", "--port", "0", "--no-record", cwd=project.path)
    served.review(conversion_review(), path=CONVERT)
    served.wait_for(
        r"! converted-api-version: convertedObjects\[0\]: apiVersion is "
        r"'samples\.webhook-dev\.io/v1', the desired one is 'samples\.webhook-dev\.io/v2'"
    )


def test_a_failed_conversion_says_why_and_a_malformed_one_gets_a_400(
    serve: Callable[..., Served],
) -> None:
    served = serve(WEBSITE, "--port", "0", "--no-record")
    broken = website("e", "v2", address="no-port")
    answer = served.review(
        conversion_review(broken, desired="samples.webhook-dev.io/v1"), path=CONVERT
    )
    assert answer["response"]["result"]["status"] == "Failure"
    served.wait_for(
        r"CONVERT to samples\.webhook-dev\.io/v1  failed \(Website e: spec\.address "
        r"'no-port' is not host:port\)"
    )
    review = conversion_review()
    del review["request"]["desiredAPIVersion"]
    status, body = served.call(review, path=CONVERT)
    assert status == 400 and b"ConversionReview request has no desiredAPIVersion" in body


def test_replaying_conversions_and_admission_together_passes_and_round_trips(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    record = tmp_path / "rec.jsonl"
    record_operator_session(serve, record)
    result = run_webhook_dev("replay", str(record), "--app", WEBSITE, "--idempotence")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Website websites/a (+1) CONVERT to samples.webhook-dev.io/v2 (uid to-v2)" in (
        result.stdout
    )
    assert result.stdout.strip().endswith("3 passed, 0 failed")
    only = run_webhook_dev("replay", str(record), "--app", WEBSITE, "--where", "review:conversion")
    assert only.returncode == 0, only.stdout + only.stderr
    assert only.stdout.strip().endswith("2 passed, 0 failed")


def test_replaying_to_changed_conversion_code_fails_object_by_object(
    serve: Callable[..., Served], project: Project, tmp_path: Path
) -> None:
    record = tmp_path / "rec.jsonl"
    record_operator_session(serve, record)
    project.write(SAMPLE_SOURCE.read_text().replace('f"{host}:{port}"', 'f"{host}/{port}"'))
    result = run_webhook_dev("replay", str(record), "--app", "hook", cwd=project.path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "  convertedObjects[0]:" in result.stdout and "  convertedObjects[1]:" in result.stdout
    assert '-    "address": "example.com:8080"' in result.stdout
    assert '+    "address": "example.com/8080"' in result.stdout
    assert result.stdout.strip().endswith("2 passed, 1 failed")


def test_a_lossy_conversion_fails_the_round_trip(
    serve: Callable[..., Served], project: Project, tmp_path: Path
) -> None:
    record = tmp_path / "rec.jsonl"
    record_operator_session(serve, record)
    project.write(
        SAMPLE_SOURCE.read_text().replace(
            'annotations[TLS_ANNOTATION] = "true" if spec.pop("tls") else "false"',
            'spec.pop("tls")',
        )
    )
    result = run_webhook_dev(
        "replay",
        str(record),
        "--app",
        "hook",
        "--idempotence",
        "--where",
        "uid:to-v1",
        cwd=project.path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "object after a round trip [0]:" in result.stdout
    assert '-    "tls": true' in result.stdout


def test_replaying_conversions_over_shards_keeps_the_recorded_order(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    record = tmp_path / "rec.jsonl"
    record_operator_session(serve, record)
    result = run_webhook_dev("replay", str(record), "--app", WEBSITE, "--jobs", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    uids = re.findall(r"\(uid ([a-z0-9-]+)\)", result.stdout)
    assert uids == ["to-v2", "to-v1", "default-d"]


def test_saving_the_conversion_code_under_continuous_reads_fails_no_conversion(
    serve: Callable[..., Served], project: Project
) -> None:
    """What the apiserver sees while a developer saves: every conversion answered, by the
    old code or the new, none failed (a failed conversion fails the client's read)."""
    source = SAMPLE_SOURCE.read_text()
    project.write(source)
    served = serve("hook", "--port", "0", "--no-record", cwd=project.path)
    results = asyncio.run(_convert_while_saving(served, project, source, saves=3))
    failures = [r for r in results if r[0] != 200 or r[1] is None]
    assert failures == [], failures[:3]
    assert results[-1][1] == "example.com;8080"


async def _convert_while_saving(
    served: Served, project: Project, source: str, saves: int
) -> list[tuple[int, str | None]]:
    results: list[tuple[int, str | None]] = []
    body = json.dumps(conversion_review()).encode()
    url = f"https://127.0.0.1:{served.port}{CONVERT}"
    stop = asyncio.Event()

    async def reader(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            async with session.post(url, data=body, ssl=served.tls_context()) as response:
                answer = await response.json() if response.status == 200 else {}
                objects = answer.get("response", {}).get("convertedObjects") or [{}]
                results.append((response.status, objects[0].get("spec", {}).get("address")))

    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(reader(session))
        for number in range(saves):
            separator = ";" if number == saves - 1 else f"-{number}-"
            project.write(source.replace('f"{host}:{port}"', f'f"{{host}}{separator}{{port}}"'))
            await asyncio.to_thread(served.wait_for, rf"worker {number + 2} ready")
            await asyncio.sleep(0.3)
        stop.set()
        await task
    return results
