"""The samples take what the proxy takes; a worker's memory is shown and warned about
(issue 15, finding 10)."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import Project, Served
from tests.reviews import pod, request_review

LEAKY = """
from aiohttp import web

KEPT = []

async def mutate(request):
    review = await request.json()
    KEPT.append(bytearray(40 * 1024 * 1024))  # 40 MiB kept per call, touched
    KEPT[-1][::4096] = b"x" * len(KEPT[-1][::4096])
    return web.json_response({
        "apiVersion": review["apiVersion"], "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": True},
    })

app = web.Application()
app.router.add_post("/mutate", mutate)
"""


def test_a_sample_answers_a_review_over_aiohttps_default_one_mib(
    serve: Callable[..., Served],
) -> None:
    served = serve("sample_webhook.sidecar_injector", "--port", "0", "--no-record", "--no-reload")
    big = pod(annotations={"padding": "x" * (3 * 1024 * 1024)})
    answer = served.review(request_review(big))
    assert answer["response"]["allowed"] is True


def test_a_worker_past_the_memory_threshold_is_warned_about_on_the_console(
    serve: Callable[..., Served], project: Project
) -> None:
    project.write(LEAKY)
    served = serve(
        "hook:app",
        "--port",
        "0",
        "--no-record",
        "--no-reload",
        cwd=project.path,
        env={"WEBHOOK_DEV_WORKER_RSS_WARNING_MB": "200"},
    )
    for number in range(6):
        served.review(request_review(uid=f"call-{number}"))
    served.wait_for(r"worker 1 uses \d+ MiB of memory \(warning past 200 MiB\)", timeout=30)
