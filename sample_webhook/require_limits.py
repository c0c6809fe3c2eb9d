"""Validating webhook: deny Pods whose containers have no CPU or memory limits.

The denial names every offending container and what it lacks, e.g.
``container "app" has no resources.limits.memory``, so ``kubectl`` shows the fix.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sample_webhook.admission import MAX_REVIEW_BYTES, Answer, allow, deny, handler

REQUIRED = ("cpu", "memory")


def missing_limits(pod: dict[str, Any]) -> list[str]:
    """One sentence per container (init containers included) lacking a required limit."""
    spec = pod.get("spec") or {}
    problems = []
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or []:
            limits = (container.get("resources") or {}).get("limits") or {}
            absent = [f"resources.limits.{name}" for name in REQUIRED if name not in limits]
            if absent:
                problems.append(f"container {container.get('name')!r} has no {' or '.join(absent)}")
    return problems


def create_app() -> web.Application:
    def decide(request: dict[str, Any]) -> Answer:
        pod = request.get("object")
        if (request.get("kind") or {}).get("kind") != "Pod" or not isinstance(pod, dict):
            return allow()
        problems = missing_limits(pod)
        if problems:
            return deny("; ".join(problems) + ": set CPU and memory limits on every container")
        return allow()

    app = web.Application(client_max_size=MAX_REVIEW_BYTES)
    app.router.add_post("/validate", handler(decide))
    return app


app = create_app()
