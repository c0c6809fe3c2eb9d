"""The AdmissionReview plumbing every sample shares (copy it along with a sample).

Answers carry the request's own ``apiVersion`` (``admission.k8s.io/v1`` or ``v1beta1``)
and echo its ``uid``, as the apiserver requires.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
# The largest review to accept: aiohttp's default is 1 MiB, but an UPDATE carries the
# object and its old version, each up to etcd's 1.5 MiB. 8 MiB, as webhook-dev's proxy.
MAX_REVIEW_BYTES = 8 * 1024 * 1024

Review = dict[str, Any]
Answer = dict[str, Any]
Decide = Callable[[dict[str, Any]], Answer | Awaitable[Answer]]


def escape(key: str) -> str:
    """A JSON Pointer token (RFC 6901): ``~`` → ``~0`` first, then ``/`` → ``~1``."""
    return key.replace("~", "~0").replace("/", "~1")


def allow(patch: list[dict[str, Any]] | None = None, warnings: list[str] | None = None) -> Answer:
    answer: Answer = {"allowed": True}
    if patch:
        answer["patchType"] = "JSONPatch"
        answer["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    if warnings:
        answer["warnings"] = warnings
    return answer


def deny(message: str, code: int = 403, reason: str = "Forbidden") -> Answer:
    return {"allowed": False, "status": {"code": code, "reason": reason, "message": message}}


def handler(decide: Decide) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler that reads the review, asks ``decide(request)``, and answers."""

    async def handle(request: web.Request) -> web.Response:
        try:
            review = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="body is not JSON") from None
        if (
            not isinstance(review, dict)
            or review.get("apiVersion") not in VERSIONS
            or not isinstance(review.get("request"), dict)
        ):
            raise web.HTTPBadRequest(text="expected an admission.k8s.io/v1 AdmissionReview")
        admission_request = review["request"]
        answer = decide(admission_request)
        if not isinstance(answer, dict):
            answer = await answer
        answer = {"uid": admission_request.get("uid", ""), **answer}
        return web.json_response(
            {"apiVersion": review["apiVersion"], "kind": "AdmissionReview", "response": answer}
        )

    return handle
