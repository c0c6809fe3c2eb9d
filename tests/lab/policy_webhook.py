"""The webhook that ``tests/policies/lab_configmaps.yaml`` replaces, decided by hand, with
three deliberate differences the policy comparison must find (and nothing else):

* ``pl-drift``: the mutating webhook sets ``owner: webhook`` where the policy sets
  ``owner: policy`` (the object after the patch differs);
* ``pl-lenient``: the validating webhook allows the ``forbidden`` key the policy denies;
* ``pl-quiet``: the validating webhook forgets the policy's warning.

Run by ``up --app tests.lab.policy_webhook`` in tests/lab/test_policy_truth.py.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sample_webhook.admission import MAX_REVIEW_BYTES, Answer, allow, deny, handler

CHECKED = {"policy-lab/checked": "true"}


def mutate(request: dict[str, Any]) -> Answer:
    configmap = request.get("object") or {}
    metadata = configmap.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if not metadata.get("name", "").startswith("pl-") or "skip-mutation" in labels:
        return allow()
    owner = "webhook" if metadata["name"] == "pl-drift" else "policy"
    return allow(
        [
            {"op": "add", "path": "/metadata/labels/owner", "value": owner},
            {"op": "add", "path": "/metadata/annotations", "value": CHECKED},
        ]
    )


def validate(request: dict[str, Any]) -> Answer:
    configmap = request.get("object") or {}
    metadata = configmap.get("metadata") or {}
    name = metadata.get("name", "")
    if not name.startswith("pl-"):
        return allow()
    if "forbidden" in (configmap.get("data") or {}) and name != "pl-lenient":
        return deny("the key 'forbidden' is not allowed", 403, "Forbidden")
    if "team" not in (metadata.get("labels") or {}) and name != "pl-quiet":
        return allow(warnings=["a ConfigMap should have a team label"])
    return allow()


def create_app() -> web.Application:
    app = web.Application(client_max_size=MAX_REVIEW_BYTES)
    app.router.add_post("/mutate", handler(mutate))
    app.router.add_post("/validate", handler(validate))
    return app
