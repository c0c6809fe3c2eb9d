"""The ConversionReview plumbing for a CRD conversion webhook (copy it along with a sample).

kube-apiserver POSTs a ConversionReview when an object must be read or written in a
version other than the one it is stored in: ``request.objects`` to be converted to
``request.desiredAPIVersion``. The answer echoes ``uid``, carries one converted object per
request object in the same order (each with the desired ``apiVersion``; only labels and
annotations of its metadata may change) and ``result.status: Success`` — or
``Failure`` with a ``message``, which the apiserver returns to whoever read the object.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

VERSIONS = ("apiextensions.k8s.io/v1", "apiextensions.k8s.io/v1beta1")
# A list read converts every object of the page in one call: allow large bodies.
MAX_REVIEW_BYTES = 8 * 1024 * 1024

Object = dict[str, Any]
# Converts one object (a deep copy is yours to change) to ``desired`` (group/version).
Convert = Callable[[Object, str], Object]


class ConversionError(Exception):
    """Raised by a converter for an object it cannot convert: its text becomes the
    ``Failure`` message the apiserver returns to the client."""


def handler(convert: Convert) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler that converts each object with ``convert`` and answers."""

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
            raise web.HTTPBadRequest(text="expected an apiextensions.k8s.io/v1 ConversionReview")
        conversion = review["request"]
        desired = str(conversion.get("desiredAPIVersion") or "")
        try:
            converted = [convert(obj, desired) for obj in conversion.get("objects") or []]
            response: dict[str, Any] = {
                "convertedObjects": converted,
                "result": {"status": "Success"},
            }
        except ConversionError as error:
            response = {
                "convertedObjects": [],
                "result": {"status": "Failure", "message": str(error)},
            }
        response = {"uid": conversion.get("uid", ""), **response}
        return web.json_response(
            {"apiVersion": review["apiVersion"], "kind": "ConversionReview", "response": response}
        )

    return handle
