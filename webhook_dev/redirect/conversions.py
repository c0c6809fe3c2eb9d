"""CustomResourceDefinitions as callers: which CRDs' conversion webhooks call what. Pure.

kube-apiserver calls a CRD's conversion webhook (``spec.conversion.webhook.clientConfig``,
``strategy: Webhook``) to turn stored objects into the version a client asked for, and
objects a client sent into the storage version. A conversion webhook is a *caller* of its
Service exactly as a webhook entry is: redirect the Service and the CRD's conversion
calls arrive at the tunnel too, so its ``caBundle`` must trust our CA, or every read of a
non-storage version fails its TLS handshake.

Unlike an admission entry, a conversion has no ``failurePolicy`` and no
``timeoutSeconds``: nothing here can soften what a sleeping laptop does to it
(docs/up-and-down.md, "Conversion webhooks").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webhook_dev.errors import PreflightError

Json = dict[str, Any]

CRD_KIND = "CustomResourceDefinition"
CRD_COLLECTION = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
#: Where a CRD's conversion clientConfig lives, as a :mod:`~webhook_dev.redirect.plan` path.
CLIENT_CONFIG_PATH = ("spec", "conversion", "webhook", "clientConfig")


def client_config(crd: Json) -> Json | None:
    """The conversion webhook's clientConfig, or ``None`` if the CRD converts by itself."""
    conversion = (crd.get("spec") or {}).get("conversion") or {}
    if conversion.get("strategy") != "Webhook":
        return None
    config = (conversion.get("webhook") or {}).get("clientConfig")
    return dict(config) if isinstance(config, dict) else None


def calls_service(crd: Json, namespace: str, name: str) -> bool:
    service = (client_config(crd) or {}).get("service") or {}
    return bool(service.get("namespace") == namespace and service.get("name") == name)


def crds_for_service(crds: dict[str, Json], namespace: str, name: str) -> list[str]:
    """Names of the CRDs whose conversion webhook calls Service ``namespace/name``."""
    return sorted(crd_name for crd_name, crd in crds.items() if calls_service(crd, namespace, name))


def check_crd(crds: dict[str, Json], name: str) -> Json:
    """The CRD ``--crd NAME`` names, refused before any change unless it has a conversion
    webhook to redirect."""
    crd = crds.get(name)
    if crd is None:
        raise PreflightError(
            f"no CustomResourceDefinition named {name!r}",
            hint="--crd wants the CRD's full name, PLURAL.GROUP "
            "(kubectl get customresourcedefinitions)",
        )
    if client_config(crd) is None:
        strategy = ((crd.get("spec") or {}).get("conversion") or {}).get("strategy", "None")
        raise PreflightError(
            f"CustomResourceDefinition {name} has no conversion webhook (strategy: {strategy})",
            hint="only spec.conversion.strategy: Webhook calls a webhook; drop --crd",
        )
    return crd


@dataclass(frozen=True)
class Versions:
    """A CRD's versions as conversion sees them."""

    group: str
    plural: str
    kind: str
    namespaced: bool
    storage: str
    other_served: tuple[str, ...]  # served versions the apiserver must convert to and from

    def collection(self, version: str, namespace: str | None = None) -> str:
        where = f"/namespaces/{namespace}" if namespace and self.namespaced else ""
        return f"/apis/{self.group}/{version}{where}/{self.plural}"


def versions(crd: Json) -> Versions:
    spec = crd.get("spec") or {}
    entries = spec.get("versions") or []
    storage = next((v["name"] for v in entries if v.get("storage")), "")
    served = tuple(v["name"] for v in entries if v.get("served") and v["name"] != storage)
    names = spec.get("names") or {}
    return Versions(
        group=str(spec.get("group", "")),
        plural=str(names.get("plural", "")),
        kind=str(names.get("kind", "")),
        namespaced=spec.get("scope") == "Namespaced",
        storage=storage,
        other_served=served,
    )
