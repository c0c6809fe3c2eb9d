"""Secret values stay off the console as they stay out of recordings and pages (issue 23,
finding 6): a deny message, a warning and a handler's traceback that quote a Secret's
value show its marker instead, unless ``--show-secrets``."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from tests.conftest import Project, Served
from tests.reviews import request_review

PASSWORD = "hunter2-correct-horse"
APP = """
    import base64
    from aiohttp import web

    async def validate(request):
        review = await request.json()
        secret = review["request"]["object"]
        password = base64.b64decode(secret["data"]["password"]).decode()
        if secret["metadata"]["name"] == "raises":
            raise ValueError(f"cannot use {password}")
        return web.json_response({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": review["request"]["uid"],
                "allowed": False,
                "status": {"message": f"password {password} is too weak"},
                "warnings": [f"rotate {password} soon"],
            },
        })

    app = web.Application()
    app.router.add_post("/validate", validate)
"""


def _secret_review(name: str) -> dict[str, object]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {"password": base64.b64encode(PASSWORD.encode()).decode()},
    }
    return request_review(secret, kind="Secret")


@pytest.mark.parametrize("show_secrets", [False, True])
def test_deny_messages_warnings_and_tracebacks_show_secret_values_only_when_asked(
    serve: Callable[..., Served], project: Project, show_secrets: bool
) -> None:
    project.write(APP)
    flags = ["--show-secrets"] if show_secrets else []
    served = serve("hook:app", "--port", "0", "--no-record", *flags, cwd=project.path)
    path = "/validate?timeout=10s"
    assert served.call(_secret_review("weak"), path=path)[0] == 200
    served.wait_for(r"Secret default/weak\s+CREATE\s+denied")
    assert served.call(_secret_review("raises"), path=path)[0] == 500
    served.wait_for(r"ValueError: cannot use ")
    served.wait_for(r'hook\.py", line \d+, in validate')
    denied = served.wait_for(r"Secret default/weak\s+CREATE\s+denied")
    raised = served.wait_for(r"ValueError: cannot use ")
    if show_secrets:
        assert PASSWORD in denied and PASSWORD in raised
    else:
        assert PASSWORD not in served.output, served.output[-3000:]
        assert "password webhook-dev:redacted:hmac-sha256:" in denied
        assert "cannot use webhook-dev:redacted:hmac-sha256:" in raised
