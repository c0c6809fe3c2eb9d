"""Make docs/inspector.png: the inspector after a few calls to the two sample webhooks.

    .venv/bin/python dev/inspector_screenshot.py [OUT.png]

Serves sidecar_injector (/mutate) and require_limits (/validate) as one app, sends a
handful of AdmissionReviews, selects the sidecar injection and presses Replay, then
photographs the page in Debian's headless Chromium (as the browser tests do).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.browser import CHROMIUM, CHROMIUM_ARGS, inspector_url  # noqa: E402
from tests.conftest import Served  # noqa: E402
from tests.reviews import pod, request_review  # noqa: E402

BOTH_SAMPLES = """
from aiohttp import web

from sample_webhook import require_limits, sidecar_injector


def create_app():
    app = web.Application()
    for sample in (sidecar_injector.create_app(), require_limits.create_app()):
        for route in sample.router.routes():
            app.router.add_route(route.method, route.resource.canonical, route.handler)
    return app
"""


def reviews() -> list[tuple[str, dict[str, object]]]:
    limited = pod("api-7f9c", namespace="payments")
    limited["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "500m", "memory": "256Mi"}}
    unlimited = pod("api-5d2b", namespace="payments")
    opted_out = pod("batch-1", annotations={"sidecar-injector/inject": "off"})
    updated = request_review(pod("web-1", labels={"app": "web"}), operation="UPDATE", uid="u5")
    updated["request"]["oldObject"] = pod("web-1")
    calls = [
        ("/validate", request_review(limited, namespace="payments", uid="u1")),
        ("/validate", request_review(unlimited, namespace="payments", uid="u2")),
        ("/mutate", request_review(opted_out, uid="u3")),
        ("/mutate", updated),
        ("/mutate", request_review(pod("web-0", labels={"app": "web"}), uid="u6")),
    ]
    users = ["system:serviceaccount:payments:deployer", "alice@example.com"]
    for number, (_, review) in enumerate(calls):
        review["request"]["userInfo"] = {"username": users[number % 2]}  # type: ignore[index]
    return calls


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as directory:
        project = Path(directory)
        (project / "both.py").write_text(BOTH_SAMPLES)
        served = Served(
            ["both", "--port", "0", "--no-record", "--no-reload", "--inspector-port", "0"],
            project,
            project / "state",
        )
        try:
            served.wait_until_serving()
            for path, review in reviews():
                served.call(review, path=f"{path}?timeout=10s")
            served.call(b"not json", path="/mutate?timeout=10s")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                page = browser.new_page(viewport={"width": 1500, "height": 1180})
                page.goto(inspector_url(served))
                page.locator("#exchanges tbody tr", has_text="Pod default/web-0").click()
                page.get_by_role("button", name="Replay").click()
                expect(page.locator(".replay-verdict")).to_contain_text("same")
                page.locator("table.diff").scroll_into_view_if_needed()
                page.locator("#detail").evaluate("node => { node.scrollTop = 0; }")
                page.screenshot(path=str(out))
                browser.close()
        finally:
            served.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "inspector.png")
