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


def website(name: str = "home", version: str = "v1", **spec: Any) -> dict[str, Any]:
    """A sample_webhook.website custom resource in ``version``."""
    spec = spec or ({"host": "example.com", "port": 8080} if version == "v1" else {})
    return {
        "apiVersion": f"samples.webhook-dev.io/{version}",
        "kind": "Website",
        "metadata": {
            "name": name,
            "namespace": "websites",
            "uid": f"uid-{name}",
            "resourceVersion": "41",
            "labels": {"team": "web"},
        },
        "spec": spec,
    }


def conversion_review(
    *objects: dict[str, Any],
    desired: str = "samples.webhook-dev.io/v2",
    uid: str = "c0nv-uid",
    version: str = "apiextensions.k8s.io/v1",
) -> dict[str, Any]:
    """A ConversionReview as kube-apiserver sends it (one object by default)."""
    return {
        "apiVersion": version,
        "kind": "ConversionReview",
        "request": {
            "uid": uid,
            "desiredAPIVersion": desired,
            "objects": [copy.deepcopy(o) for o in objects] or [website()],
        },
    }
