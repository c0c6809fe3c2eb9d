"""The website sample with one edit, as a developer's next version: a ``v2`` Website named
``differs-*`` gets ``spec.tls: false`` when it has none. Shadow mode's conversion test runs
it as the local code, against the sample itself in the cluster."""

from __future__ import annotations

from aiohttp import web

from sample_webhook import admission, conversion, website
from sample_webhook.conversion import Object


def convert(obj: Object, desired: str) -> Object:
    converted = website.convert(obj, desired)
    name = str((converted.get("metadata") or {}).get("name") or "")
    if desired == website.V2 and name.startswith("differs") and "tls" not in converted["spec"]:
        converted["spec"] = {**converted["spec"], "tls": False}
    return converted


def create_app() -> web.Application:
    app = web.Application(client_max_size=conversion.MAX_REVIEW_BYTES)
    app.router.add_post("/convert", conversion.handler(convert))
    app.router.add_post("/mutate", admission.handler(website.default))
    return app


app = create_app()
