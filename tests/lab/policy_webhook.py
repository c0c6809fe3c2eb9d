"""The webhook that ``tests/policies/lab_configmaps.yaml`` replaces, decided by hand, with
three deliberate differences the policy comparison must find (and nothing else):

* ``pl-drift``: the mutating webhook sets ``owner: webhook`` where the policy sets
  ``owner: policy`` (the object after the patch differs);
* ``pl-lenient``: the validating webhook allows the ``forbidden`` key the policy denies;
* ``pl-quiet``: the validating webhook forgets the policy's warning.

Run by ``up --app tests.lab.policy_webhook`` in tests/lab/test_policy_truth.py.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

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
    data = configmap.get("data") or {}
    if "forbidden" in data and name != "pl-lenient":
        return deny("the key 'forbidden' is not allowed", 403, "Forbidden")
    broken = _library_rule_broken(data)
    if broken is not None:
        return deny(broken, 403, "Forbidden")
    if "team" not in (metadata.get("labels") or {}) and name != "pl-quiet":
        return allow(warnings=["a ConfigMap should have a team label"])
    return allow()


BINARY_SUFFIXES = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _library_rule_broken(data: dict[str, str]) -> str | None:
    """What the policy ``lab-libraries`` checks with Kubernetes' CEL libraries, in Python:
    the message of the rule ``data`` breaks, if any."""
    if "mem" in data:
        number, suffix = data["mem"][:-2], data["mem"][-2:]
        if int(number) * BINARY_SUFFIXES[suffix] >= 1 << 30:
            return "mem must be below 1Gi"
    if "site" in data and urlsplit(data["site"]).scheme != "https":
        return "site must be an https URL"
    if "ip" in data and ipaddress.ip_address(data["ip"]) not in ipaddress.ip_network("10.0.0.0/8"):
        return "ip must be an address in 10.0.0.0/8"
    if "dns" in data and (len(data["dns"]) > 63 or not DNS_LABEL.fullmatch(data["dns"])):
        return "dns must be a DNS label"
    if "code" in data:
        digits = re.search(r"[0-9]+", data["code"])
        if not re.match(r"^[a-z]+[0-9]+[a-z]*$", data["code"]) or not digits or digits[0] != "42":
            return "code must hold 42"
    return None


def create_app() -> web.Application:
    app = web.Application(client_max_size=MAX_REVIEW_BYTES)
    app.router.add_post("/mutate", handler(mutate))
    app.router.add_post("/validate", handler(validate))
    return app
