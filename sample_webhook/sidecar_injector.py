"""Mutating webhook: add an nginx sidecar to every Pod, once.

The sidecar ``nginx-sidecar`` serves port 80 with its configuration mounted from the
ConfigMap ``nginx-sidecar-config`` at ``/etc/nginx/conf.d``; the Pod is annotated
``sidecar-injector/injected: "true"``. Pods are skipped when annotated
``sidecar-injector/inject: "false"`` (or ``no``/``off``), already injected, or in
kube-system / kube-public — so running the webhook over its own output changes nothing.

Environment: ``SIDECAR_IMAGE`` (default ``nginx:1.27-alpine``), ``SIDECAR_CONFIGMAP``
(default ``nginx-sidecar-config``).
"""

from __future__ import annotations

import os
from typing import Any

from aiohttp import web

from sample_webhook.admission import MAX_REVIEW_BYTES, Answer, allow, escape, handler

CONTAINER = "nginx-sidecar"
VOLUME = "nginx-sidecar-config"
INJECT = "sidecar-injector/inject"
INJECTED = "sidecar-injector/injected"
SKIPPED_NAMESPACES = frozenset({"kube-system", "kube-public"})
OPT_OUT = frozenset({"false", "no", "off", "0"})


def sidecar_patch(pod: dict[str, Any], *, image: str, configmap: str) -> list[dict[str, Any]]:
    """The JSON Patch that injects the sidecar, or ``[]`` when the Pod must be left alone."""
    metadata = pod.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or []
    if str(annotations.get(INJECT, "")).strip().lower() in OPT_OUT:
        return []
    if annotations.get(INJECTED) == "true" or any(c.get("name") == CONTAINER for c in containers):
        return []
    sidecar = {
        "name": CONTAINER,
        "image": image,
        "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
        "volumeMounts": [{"name": VOLUME, "mountPath": "/etc/nginx/conf.d", "readOnly": True}],
    }
    volume = {"name": VOLUME, "configMap": {"name": configmap}}
    patch: list[dict[str, Any]] = [{"op": "add", "path": "/spec/containers/-", "value": sidecar}]
    if "volumes" in spec:
        if not any(v.get("name") == VOLUME for v in spec["volumes"] or []):
            patch.append({"op": "add", "path": "/spec/volumes/-", "value": volume})
    else:
        patch.append({"op": "add", "path": "/spec/volumes", "value": [volume]})
    if "annotations" in metadata and metadata["annotations"] is not None:
        path = f"/metadata/annotations/{escape(INJECTED)}"
        patch.append({"op": "add", "path": path, "value": "true"})
    else:
        patch.append({"op": "add", "path": "/metadata/annotations", "value": {INJECTED: "true"}})
    return patch


def create_app() -> web.Application:
    image = os.environ.get("SIDECAR_IMAGE", "nginx:1.27-alpine")
    configmap = os.environ.get("SIDECAR_CONFIGMAP", "nginx-sidecar-config")

    def decide(request: dict[str, Any]) -> Answer:
        kind = (request.get("kind") or {}).get("kind")
        pod = request.get("object")
        if kind != "Pod" or request.get("operation") != "CREATE" or not isinstance(pod, dict):
            return allow()
        if request.get("namespace") in SKIPPED_NAMESPACES:
            return allow()
        return allow(sidecar_patch(pod, image=image, configmap=configmap))

    app = web.Application(client_max_size=MAX_REVIEW_BYTES)
    app.router.add_post("/mutate", handler(decide))
    app.router.add_get("/healthz", healthz)
    return app


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


app = create_app()
