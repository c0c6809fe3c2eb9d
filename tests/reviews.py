"""AdmissionReview builders shared by the unit tests."""

from __future__ import annotations

import copy
from typing import Any


def pod(name: str = "web-0", **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", **metadata},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    }


def request_review(
    obj: dict[str, Any] | None = None,
    *,
    uid: str = "3f1c-uid",
    version: str = "admission.k8s.io/v1",
    kind: str = "Pod",
    namespace: str = "default",
    operation: str = "CREATE",
) -> dict[str, Any]:
    obj = copy.deepcopy(obj) if obj is not None else pod()
    return {
        "apiVersion": version,
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": kind.lower() + "s"},
            "namespace": namespace,
            "name": obj.get("metadata", {}).get("name", ""),
            "operation": operation,
            "object": obj,
            "oldObject": None,
        },
    }
