"""Bad input gets a clear 4xx and the proxy keeps serving; bad answers are flagged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Project, Served
from tests.reviews import request_review


def test_serve_answers_each_kind_of_bad_input_with_a_clear_4xx_and_keeps_serving(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    record = tmp_path / "rec.jsonl"
    served = serve(
        "sample_webhook.sidecar_injector", "--port", "0", "--record", str(record), "--no-reload"
    )
    no_uid = request_review()
    no_uid["request"]["uid"] = ""
    cases = [
        ({"method": "GET", "body": None}, 405, "method GET not allowed"),
        ({"body": b"<xml/>"}, 400, "request body is not JSON"),
        ({"body": {"apiVersion": "v1", "kind": "Pod"}}, 400, "not an AdmissionReview"),
        ({"body": no_uid}, 400, "no uid"),
        ({"body": b"x" * (9 * 1024 * 1024)}, 413, "request body too large"),
    ]
    for options, status, message in cases:
        got_status, body = served.call(**options)  # type: ignore[arg-type]
        assert (got_status, message in body.decode()) == (status, True), body
        served.wait_for(rf"{status} .*{message}")
    assert served.review(request_review())["response"]["allowed"] is True
    served.wait_for(r"Pod default/web-0\s+CREATE\s+allowed")  # recorded after the answer
    assert len(record.read_text().splitlines()) == 1  # bad input has nothing to replay


def test_an_exception_in_the_handler_is_a_500_with_its_traceback_printed_and_recorded(
    serve: Callable[..., Served], project: Project, tmp_path: Path
) -> None:
    project.write_app("v1", body="1 / 0")
    record = tmp_path / "rec.jsonl"
    served = serve("hook", "--port", "0", "--record", str(record), cwd=project.path)
    status, body = served.call(request_review())
    assert status == 500 and b"ZeroDivisionError" in body
    served.wait_for(r"Pod default/web-0\s+CREATE\s+HTTP 500")
    served.wait_for(r"ZeroDivisionError: division by zero")
    served.wait_for(r'hook\.py", line \d+, in mutate')
    line = json.loads(record.read_text().splitlines()[0])
    assert line["http_status"] == 500 and "ZeroDivisionError" in line["error"]
    assert served.call(request_review())[0] == 500  # and still serving


def test_answers_the_apiserver_would_reject_are_flagged_in_console_and_recording(
    serve: Callable[..., Served], project: Project, tmp_path: Path
) -> None:
    project.write(
        """
        import base64, json
        from aiohttp import web

        async def mutate(request):
            review = await request.json()
            patch = [{"op": "add", "path": "/metadata/annotations/a", "value": "b"}]
            return web.json_response({
                "apiVersion": "admission.k8s.io/v1beta1",
                "kind": "AdmissionReview",
                "response": {"uid": "not-the-uid", "patchType": "JSONPatch",
                             "patch": base64.b64encode(json.dumps(patch).encode()).decode()},
            })

        app = web.Application()
        app.router.add_post("/mutate", mutate)
        """
    )
    record = tmp_path / "rec.jsonl"
    served = serve("hook:app", "--port", "0", "--record", str(record), cwd=project.path)
    served.review(request_review())
    for code in ("uid-mismatch", "allowed-missing", "version-mismatch", "patch-does-not-apply"):
        served.wait_for(rf"! {code}: ")
    flags = {flag["code"] for flag in json.loads(record.read_text())["flags"]}
    assert {"uid-mismatch", "allowed-missing", "version-mismatch", "patch-does-not-apply"} <= flags
