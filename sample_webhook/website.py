"""An operator-style webhook: conversion between two versions of a CRD, and defaulting.

The CRD (``deploy/website.yaml``) is ``websites.samples.webhook-dev.io``: ``v1`` (stored)
has ``spec.host`` and ``spec.port``; ``v2`` joins them into ``spec.address``
(``host:port``) and adds ``spec.tls``. Conversion must be lossless both ways, as the
apiserver reads and writes either version through the stored one: a ``v2`` object's
``tls`` has no ``v1`` field, so it travels in an annotation and comes back from it.

One app serves both callbacks, as a kubebuilder or controller-runtime manager does:
``POST /convert`` (the CRD's ``spec.conversion.webhook``) and ``POST /mutate`` (a
MutatingWebhookConfiguration that defaults ``spec.port`` of a ``v1`` Website to 443).
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from sample_webhook import admission, conversion
from sample_webhook.conversion import ConversionError, Object

GROUP = "samples.webhook-dev.io"
V1, V2 = f"{GROUP}/v1", f"{GROUP}/v2"
DEFAULT_PORT = 443
# v2's spec.tls, kept while the object is stored as v1 (which has no such field).
TLS_ANNOTATION = "samples.webhook-dev.io/v2-tls"


def to_v2(obj: Object) -> Object:
    """``spec.host`` and ``spec.port`` → ``spec.address``; ``tls`` from the annotation."""
    spec = dict(obj.get("spec") or {})
    host, port = spec.pop("host", ""), spec.pop("port", DEFAULT_PORT)
    spec["address"] = f"{host}:{port}"
    annotations = dict((obj.get("metadata") or {}).get("annotations") or {})
    tls = annotations.pop(TLS_ANNOTATION, None)
    if tls is not None:
        spec["tls"] = tls == "true"
    return _with(obj, V2, spec, annotations)


def to_v1(obj: Object) -> Object:
    """``spec.address`` → ``spec.host`` and ``spec.port``; ``tls`` into the annotation."""
    spec = dict(obj.get("spec") or {})
    address = str(spec.pop("address", ""))
    host, separator, port = address.rpartition(":")
    if not separator or not port.isdigit():
        name = (obj.get("metadata") or {}).get("name")
        raise ConversionError(f"Website {name}: spec.address {address!r} is not host:port")
    spec["host"], spec["port"] = host, int(port)
    annotations = dict((obj.get("metadata") or {}).get("annotations") or {})
    if "tls" in spec:
        annotations[TLS_ANNOTATION] = "true" if spec.pop("tls") else "false"
    return _with(obj, V1, spec, annotations)


def convert(obj: Object, desired: str) -> Object:
    """One object to ``desired``; an object already there comes back as it is."""
    version = obj.get("apiVersion")
    if version == desired:
        return obj
    if (version, desired) == (V1, V2):
        return to_v2(obj)
    if (version, desired) == (V2, V1):
        return to_v1(obj)
    raise ConversionError(f"cannot convert {version} to {desired}: this webhook knows {V1}, {V2}")


def _with(
    obj: Object, api_version: str, spec: dict[str, Any], annotations: dict[str, str]
) -> Object:
    converted = copy.deepcopy(obj)
    converted["apiVersion"] = api_version
    converted["spec"] = spec
    metadata = converted.setdefault("metadata", {})
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    return converted


def default(request: dict[str, Any]) -> admission.Answer:
    """A v1 Website without ``spec.port`` gets 443 (v2 objects carry it in the address)."""
    obj = request.get("object")
    if not isinstance(obj, dict) or obj.get("apiVersion") != V1:
        return admission.allow()
    spec = obj.get("spec")
    if not isinstance(spec, dict) or "port" in spec:
        return admission.allow()
    return admission.allow([{"op": "add", "path": "/spec/port", "value": DEFAULT_PORT}])


def create_app() -> web.Application:
    app = web.Application(client_max_size=conversion.MAX_REVIEW_BYTES)
    app.router.add_post("/convert", conversion.handler(convert))
    app.router.add_post("/mutate", admission.handler(default))
    return app


app = create_app()
