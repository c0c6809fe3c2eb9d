"""The live proof that the path works: an object the webhook's rules match. Pure.

After redirecting, ``up`` makes a server-side dry-run create (``?dryRun=All``: admission
runs, nothing is stored) of an object chosen so the apiserver must call the webhook: a
resource and operation the rules match, in a namespace the ``namespaceSelector`` matches,
with labels the ``objectSelector`` matches. Seeing that call arrive at the local proxy is
what proves apiserver → Service → tunnel → code, whichever way the cluster resolves Services.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook_dev.redirect.conversions import Versions

Json = dict[str, Any]

PROBE_PREFIX = "webhook-dev-probe-"

# Minimal valid objects for resources we know how to make; others are not probed.
_TEMPLATES: dict[tuple[str, str], tuple[str, str, Json]] = {
    ("", "pods"): (
        "v1",
        "Pod",
        {"spec": {"containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}]}},
    ),
    ("", "configmaps"): ("v1", "ConfigMap", {"data": {}}),
    ("", "services"): ("v1", "Service", {"spec": {"ports": [{"port": 80}]}}),
    ("apps", "deployments"): (
        "apps/v1",
        "Deployment",
        {
            "spec": {
                "selector": {"matchLabels": {"webhook-dev/probe": "true"}},
                "template": {
                    "metadata": {"labels": {"webhook-dev/probe": "true"}},
                    "spec": {
                        "containers": [{"name": "probe", "image": "registry.k8s.io/pause:3.10"}]
                    },
                },
            }
        },
    ),
}


@dataclass(frozen=True)
class ProbeObject:
    collection: str  # REST path to POST to
    manifest: Json
    name: str


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A ``metav1.LabelSelector`` against a label set; ``None``/empty selects everything."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def labels_satisfying(selector: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Some label set the selector matches, or ``None`` if we cannot construct one."""
    labels = dict((selector or {}).get("matchLabels") or {})
    for expression in (selector or {}).get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        if operator == "In":
            labels.setdefault(key, (expression.get("values") or [""])[0])
        elif operator == "Exists":
            labels.setdefault(key, "true")
    return labels if selector_matches(selector, labels) else None


def excludes_system_namespaces(entry: Mapping[str, Any]) -> bool:
    """Whether ``namespaceSelector`` keeps the entry off kube-system.

    Evaluated against the label every namespace carries since 1.21,
    ``kubernetes.io/metadata.name``; an entry without such protection can block the
    control plane's own Pods when the webhook is down.
    """
    selector = entry.get("namespaceSelector")
    return not selector_matches(selector, {"kubernetes.io/metadata.name": "kube-system"})


def probe_object(
    entry: Mapping[str, Any], namespaces: Sequence[Mapping[str, Any]]
) -> ProbeObject | None:
    """An object whose dry-run create the apiserver must send to ``entry``, if we can make one."""
    candidates = probe_objects(entry, namespaces)
    return candidates[0] if candidates else None


def probe_objects(
    entry: Mapping[str, Any], namespaces: Sequence[Mapping[str, Any]], *, limit: int = 5
) -> list[ProbeObject]:
    """Such objects in up to ``limit`` matching namespaces, best first.

    More than one, because another webhook with ``failurePolicy: Fail`` may refuse every
    create in one namespace before ours is called; the probe then tries the next.
    """
    resource = _probed_resource(entry)
    labels = labels_satisfying(entry.get("objectSelector"))
    if resource is None or labels is None:
        return []
    group, plural = resource
    api_version, kind, body = _TEMPLATES[resource]
    prefix = "/api/v1" if not group else f"/apis/{api_version}"
    objects = []
    for namespace in _matching_namespaces(entry.get("namespaceSelector"), namespaces)[:limit]:
        name = f"{PROBE_PREFIX}{uuid.uuid4().hex[:8]}"
        manifest: Json = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            **body,
        }
        objects.append(ProbeObject(f"{prefix}/namespaces/{namespace}/{plural}", manifest, name))
    return objects


def _probed_resource(entry: Mapping[str, Any]) -> tuple[str, str] | None:
    for rule in entry.get("rules") or []:
        operations = rule.get("operations") or []
        if "CREATE" not in operations and "*" not in operations:
            continue
        if rule.get("scope") == "Cluster":
            continue
        groups, resources = rule.get("apiGroups") or [], rule.get("resources") or []
        for group, plural in _TEMPLATES:
            if (group in groups or "*" in groups) and (plural in resources or "*" in resources):
                return group, plural
    return None


def _matching_namespaces(
    selector: Mapping[str, Any] | None, namespaces: Sequence[Mapping[str, Any]]
) -> list[str]:
    candidates = []
    for namespace in namespaces:
        metadata = namespace.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            continue
        labels = dict(metadata.get("labels") or {})
        labels.setdefault("kubernetes.io/metadata.name", metadata.get("name", ""))
        if selector_matches(selector, labels):
            candidates.append(str(metadata["name"]))
    # Prefer a user namespace over the system ones, and be deterministic.
    candidates.sort(key=lambda name: (name.startswith("kube-"), name != "default", name))
    return candidates


# --- conversion -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConversionProbe:
    """A call that makes the apiserver convert one object, so it calls the conversion webhook.

    ``existing`` is the object being read in another version than the stored one (``GET``
    on ``path``); otherwise ``manifest`` is a minimal object POSTed as a dry run to
    ``path`` in a non-storage version, which the apiserver converts to the storage version
    before it would store it (DryRunnableStorage.copyInto) — *after* the CRD's schema has
    validated it, so a schema with required fields refuses it before any conversion.
    ``name`` is the object's name as the ConversionReview carries it.
    """

    path: str
    name: str
    version: str
    manifest: Json | None = None

    @property
    def existing(self) -> bool:
        return self.manifest is None


def conversion_probe(
    versions: Versions, existing: Mapping[str, Any] | None, namespace: str = "default"
) -> ConversionProbe | None:
    """The read (of ``existing``) or the dry-run create that converts, in the first served
    version other than the storage one; ``None`` when the CRD serves only one version
    (the apiserver then never converts)."""
    if not versions.other_served:
        return None
    version = versions.other_served[0]
    if existing is not None:
        metadata = existing.get("metadata") or {}
        name = str(metadata.get("name", ""))
        collection = versions.collection(version, metadata.get("namespace"))
        return ConversionProbe(f"{collection}/{name}", name, version)
    name = f"{PROBE_PREFIX}{uuid.uuid4().hex[:8]}"
    metadata = {"name": name, **({"namespace": namespace} if versions.namespaced else {})}
    manifest: Json = {
        "apiVersion": f"{versions.group}/{version}",
        "kind": versions.kind,
        "metadata": metadata,
    }
    return ConversionProbe(versions.collection(version, namespace), name, version, manifest)
