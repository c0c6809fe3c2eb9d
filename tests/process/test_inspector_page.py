"""The inspector page in headless Chromium, against a real ``webhook-dev serve`` over TLS.

Assertions are on what a user sees on the page; Playwright's ``expect`` waits for it
(up to the generous default timeout set in ``tests/browser.py``), so nothing is timed.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser import inspector_url, rows
from tests.conftest import Project, Served
from tests.reviews import conversion_review, pod, request_review, website

SIDECAR = "sample_webhook.sidecar_injector"

# Labels each Pod with tier=TIER; refuses Pods whose name starts with "bad".
LABELLING_APP = """
import base64
import json

from aiohttp import web

TIER = {tier!r}


async def mutate(request):
    review = await request.json()
    admission = review["request"]
    name = (admission.get("object") or {{}}).get("metadata", {{}}).get("name", "")
    if name.startswith("bad"):
        response = {{"uid": admission["uid"], "allowed": False,
                     "status": {{"code": 403, "message": "names starting with bad are refused"}}}}
    else:
        patch = [{{"op": "add", "path": "/metadata/labels", "value": {{"tier": TIER}}}}]
        response = {{"uid": admission["uid"], "allowed": True, "patchType": "JSONPatch",
                     "patch": base64.b64encode(json.dumps(patch).encode()).decode()}}
    return web.json_response(
        {{"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": response}}
    )


def create_app():
    app = web.Application()
    app.router.add_post("/mutate", mutate)
    return app
"""


def configmap_review(name: str, namespace: str) -> dict[str, Any]:
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"k": "v"},
    }
    return request_review(configmap, kind="ConfigMap", namespace=namespace, uid=f"uid-{name}")


def test_a_review_sent_through_serve_appears_live_with_its_decoded_patch_and_diff(
    serve: Callable[..., Served], page: Page
) -> None:
    served = serve(SIDECAR, "--port", "0", "--no-record", "--no-reload", "--inspector-port", "0")
    page.goto(inspector_url(served))
    expect(page.locator("#empty")).to_have_text("Waiting for webhook calls…")
    expect(page.locator("#connection")).to_have_text("live")

    review = request_review(pod("web-0"), uid="uid-live")
    review["request"]["userInfo"] = {"username": "alice@example.com"}
    served.review(review)

    row = rows(page).filter(has_text="Pod default/web-0")
    expect(row).to_be_visible()
    expect(row).to_contain_text("CREATE")
    expect(row).to_contain_text("alice@example.com")
    expect(row).to_contain_text("allowed")
    expect(row).to_contain_text("3 ops")
    expect(row).to_have_class(re.compile("selected"))  # the newest is selected
    patch = page.locator("table.patch")
    expect(patch.locator("tr", has_text="/spec/containers/-")).to_contain_text("nginx-sidecar")
    expect(patch.locator("tr", has_text="/metadata/annotations")).to_contain_text(
        "sidecar-injector/injected"
    )
    diff = page.locator("table.diff")
    expect(diff.locator("td.ins", has_text='"sidecar-injector/injected": "true"')).to_be_visible()
    expect(diff.locator("td.ins", has_text='"name": "nginx-sidecar"')).to_be_visible()
    expect(diff).to_contain_text('"image": "busybox"')  # the original container, unchanged
    expect(page.locator("#detail")).to_contain_text("uid-live")  # raw review, uid included
    assert page.url.endswith("/") and "token" not in page.url  # traded for a cookie


def test_filters_narrow_the_list_by_namespace_result_kind_and_text(
    serve: Callable[..., Served], project: Project, page: Page
) -> None:
    project.write(LABELLING_APP.format(tier="web"))
    served = serve("hook", "--port", "0", "--no-record", "--inspector-port", "0", cwd=project.path)
    served.review(request_review(pod("web-0"), uid="uid-1"))
    served.review(request_review(pod("api-0", namespace="team-a"), namespace="team-a", uid="u2"))
    served.review(request_review(pod("bad-0", namespace="team-a"), namespace="team-a", uid="u3"))
    served.review(configmap_review("settings", "team-a"))
    page.goto(inspector_url(served))
    expect(rows(page)).to_have_count(4)
    filters = page.locator("#filters")

    filters.locator("select[name=namespace]").select_option("team-a")
    expect(rows(page)).to_have_count(3)
    expect(page.locator("#exchanges")).not_to_contain_text("web-0")

    filters.locator("select[name=result]").select_option("denied")
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text("Pod team-a/bad-0")
    expect(page.locator("#detail")).to_contain_text("names starting with bad are refused")

    filters.locator("select[name=result]").select_option("")
    filters.locator("select[name=kind]").select_option("ConfigMap")
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text("ConfigMap team-a/settings")

    filters.locator("select[name=kind]").select_option("")
    filters.locator("select[name=namespace]").select_option("")
    filters.locator("input[name=text]").fill("api-0")
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text("Pod team-a/api-0")

    filters.locator("input[name=text]").fill("nothing-like-this")
    expect(rows(page)).to_have_count(0)
    expect(page.locator("#empty")).to_have_text("No call matches the filters.")


def test_replay_says_same_then_changed_with_the_diff_after_a_code_edit(
    serve: Callable[..., Served], project: Project, page: Page
) -> None:
    project.write(LABELLING_APP.format(tier="web"))
    served = serve("hook", "--port", "0", "--no-record", "--inspector-port", "0", cwd=project.path)
    served.review(request_review(pod("web-0"), uid="uid-replay"))
    page.goto(inspector_url(served))
    expect(page.locator("table.diff td.ins", has_text='"tier": "web"')).to_be_visible()

    page.get_by_role("button", name="Replay").click()
    verdict = page.locator(".replay-verdict")
    expect(verdict).to_contain_text("same")
    expect(verdict).to_contain_text("worker 1")

    project.write(LABELLING_APP.format(tier="backend"))
    served.wait_for(r"worker 2 ready")
    page.get_by_role("button", name="Replay").click()
    expect(verdict).to_contain_text("changed")
    expect(verdict).to_contain_text("worker 2")
    diff = page.locator("pre.unified")
    expect(diff.locator("span.del", has_text='"tier": "web"')).to_be_visible()
    expect(diff.locator("span.ins", has_text='"tier": "backend"')).to_be_visible()
    expect(rows(page)).to_have_count(1)  # a replay is not a new admission call


def test_inspect_opens_a_recording_offline_with_the_newest_call_selected_and_replay(
    serve: Callable[..., Served],
    inspect_recordings: Callable[..., Any],
    page: Page,
    tmp_path: Path,
) -> None:
    recording = tmp_path / "session.jsonl"
    served = serve(
        SIDECAR, "--port", "0", "--record", str(recording), "--no-reload", "--no-inspector"
    )
    served.review(request_review(pod("first"), uid="uid-1"))
    served.review(request_review(pod("second"), uid="uid-2"))
    served.wait_for(r"Pod default/second")
    served.stop()
    assert "inspector" not in served.output

    inspecting = inspect_recordings(str(recording), "--port", "0", "--app", SIDECAR, "--no-reload")
    page.goto(inspector_url(inspecting))
    expect(page.locator("#source")).to_have_text("session.jsonl")
    expect(rows(page)).to_have_count(2)
    expect(rows(page).first).to_contain_text("Pod default/second")
    expect(rows(page).first).to_have_class(re.compile("selected"))
    expect(page.locator("#detail h2")).to_contain_text("Pod default/second")
    expect(page.locator("table.patch")).to_contain_text("/spec/containers/-")

    rows(page).filter(has_text="Pod default/first").click()
    expect(page.locator("#detail h2")).to_contain_text("Pod default/first")
    page.get_by_role("button", name="Replay").click()
    expect(page.locator(".replay-verdict")).to_contain_text("same")


def test_the_page_answers_nothing_without_the_token(
    serve: Callable[..., Served], page: Page
) -> None:
    served = serve(SIDECAR, "--port", "0", "--no-record", "--no-reload", "--inspector-port", "0")
    url = inspector_url(served)
    bare = url.split("?")[0]
    response = page.goto(bare)
    assert response is not None and response.status == 403
    expect(page.locator("body")).to_contain_text("open the inspector with the URL")
    for path in ("api/exchanges", "static/app.js"):
        try:
            urllib.request.urlopen(bare + path, timeout=60)
            raise AssertionError(f"{path} answered without the token")
        except urllib.error.HTTPError as error:
            assert error.code == 403


def test_a_conversion_shows_each_object_before_and_after_and_filters_apart(
    serve: Callable[..., Served], page: Page
) -> None:
    served = serve(
        "sample_webhook.website",
        "--port",
        "0",
        "--no-record",
        "--no-reload",
        "--inspector-port",
        "0",
    )
    served.review(request_review(pod("web-0"), uid="uid-pod"), path="/mutate?timeout=10s")
    served.review(
        conversion_review(website("a"), website("b"), uid="uid-convert"),
        path="/convert?timeout=30s",
    )
    page.goto(inspector_url(served))
    expect(rows(page)).to_have_count(2)
    row = rows(page).filter(has_text="Website websites/a (+1)")
    expect(row).to_contain_text("CONVERT")
    expect(row).to_contain_text("converted")
    row.click()
    detail = page.locator("#detail")
    expect(detail).to_contain_text("desiredAPIVersion")
    expect(detail).to_contain_text(
        "Object 2 of 2: websites/b (samples.webhook-dev.io/v1 → samples.webhook-dev.io/v2)"
    )
    diff = page.locator("table.diff").first
    expect(diff.locator("td.ins", has_text='"address": "example.com:8080"')).to_be_visible()
    expect(diff.locator("td.del", has_text='"port": 8080')).to_be_visible()
    expect(detail).to_contain_text("Raw ConversionReviews")
    page.locator("#filters select[name=result]").select_option("converted")
    expect(rows(page)).to_have_count(1)
    page.locator("#filters select[name=result]").select_option("")
    page.locator("#filters input[name=text]").fill("review:admission")
    expect(rows(page)).to_have_count(1)
    expect(rows(page)).to_contain_text("Pod default/web-0")
