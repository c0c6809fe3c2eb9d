"""Apply YAML manifests the way ``kubectl create`` would, through API discovery.

Used by ``demo`` to install a sample webhook into the lab. Kinds whose API the cluster
does not serve (cert-manager's Issuer and Certificate on a bare lab) are skipped with a
note rather than failing the whole file: the redirect does not need them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from webhook_dev.errors import ClusterError, UsageError
from webhook_dev.kube.cluster import Cluster, NotFound

Json = dict[str, Any]


@dataclass(frozen=True)
class Applied:
    kind: str
    name: str
    outcome: str  # "created", "exists", or "skipped: <why>"

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.outcome}"


def load(path: Path) -> list[Json]:
    """The objects in a multi-document YAML file (empty documents dropped)."""
    try:
        documents = list(yaml.safe_load_all(path.read_text()))
    except (OSError, yaml.YAMLError) as error:
        raise UsageError(f"cannot read manifests from {path}: {error}") from error
    return [doc for doc in documents if isinstance(doc, dict)]


def apply(cluster: Cluster, objects: Iterable[Json]) -> list[Applied]:
    """Create each object that does not exist yet; report what happened to each."""
    resources: dict[str, dict[str, Json] | None] = {}
    results = []
    for obj in objects:
        api_version, kind = obj["apiVersion"], obj["kind"]
        metadata = obj.get("metadata") or {}
        name = (
            f"{metadata['namespace']}/{metadata['name']}"
            if metadata.get("namespace")
            else (metadata["name"])
        )
        if api_version not in resources:
            resources[api_version] = _discover(cluster, api_version)
        served = resources[api_version]
        if served is None or kind not in served:
            results.append(Applied(kind, name, f"skipped: {api_version} is not served here"))
            continue
        collection = _collection(api_version, served[kind], metadata.get("namespace"))
        if kind == "Namespace":
            _wait_while_terminating(cluster, f"{collection}/{metadata['name']}")
        try:
            cluster.create(collection, obj)
            results.append(Applied(kind, name, "created"))
        except ClusterError as error:
            if "already exists" not in error.message:
                raise
            results.append(Applied(kind, name, "exists"))
    return results


def _wait_while_terminating(cluster: Cluster, path: str, timeout: float = 120) -> None:
    """A namespace being deleted refuses new objects; wait until it is gone."""
    deadline = time.monotonic() + timeout
    while (current := cluster.get_or_none(path)) and current["metadata"].get("deletionTimestamp"):
        if time.monotonic() > deadline:
            raise ClusterError(f"{path} is still being deleted after {timeout:.0f} s")
        time.sleep(0.5)


def _discover(cluster: Cluster, api_version: str) -> dict[str, Json] | None:
    """kind → resource entry for one group/version, or None if the cluster lacks it."""
    path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    try:
        listing = cluster.get(path)
    except NotFound:
        return None
    return {
        resource["kind"]: resource
        for resource in listing.get("resources") or []
        if "/" not in resource["name"]  # not a subresource
    }


def _collection(api_version: str, resource: Json, namespace: str | None) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if resource.get("namespaced"):
        return f"{prefix}/namespaces/{namespace or 'default'}/{resource['name']}"
    return f"{prefix}/{resource['name']}"
