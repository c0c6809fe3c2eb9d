"""The Kubernetes API, as raw JSON manifests.

We go through the official client's configuration and transport (kubeconfig, contexts, exec
plugins, TLS) but not its typed models: a model silently drops fields it does not know, and
``down`` must put objects back *exactly*. Every write carries the ``resourceVersion`` it was
computed from, so a concurrent writer makes us re-read and recompute instead of overwriting.

Calls are synchronous (the client is); async callers use ``asyncio.to_thread``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from webhook_dev.errors import ClusterError

Json = dict[str, Any]  # a manifest as the API serves it

_CONFLICT_RETRIES = 5


class NotFound(ClusterError):
    pass


class Conflict(ClusterError):
    pass


class Cluster:
    """One cluster, reached through one kubeconfig context."""

    def __init__(self, api_client: Any, context_name: str) -> None:
        self._api = api_client
        self.context_name = context_name

    @classmethod
    def connect(cls, context: str | None = None, kubeconfig: str | None = None) -> Cluster:
        """Load kubeconfig as kubectl does: ``$KUBECONFIG``, ``~/.kube/config``, a context."""
        try:
            contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = context or active["name"]
            api_client = k8s_config.new_client_from_config(config_file=kubeconfig, context=chosen)
        except ConfigException as error:
            raise ClusterError(
                f"cannot load kubeconfig: {error}",
                hint="set KUBECONFIG or pass --kubeconfig; pick a context with --context",
            ) from error
        except (OSError, TypeError) as error:
            raise ClusterError(
                "no kubeconfig found",
                hint="set KUBECONFIG, or run inside the lab with: webhook-dev lab exec -- ...",
            ) from error
        names = [item["name"] for item in contexts]
        if chosen not in names:
            raise ClusterError(
                f"kubeconfig has no context {chosen!r}", hint=f"its contexts: {', '.join(names)}"
            )
        return cls(api_client, chosen)

    @property
    def api_client(self) -> Any:
        """The official client's ``ApiClient``, for what raw manifests cannot do
        (``up --relay``'s port-forward over WebSocket)."""
        return self._api

    @property
    def server(self) -> str:
        return str(self._api.configuration.host)

    # --- raw verbs ------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Json:
        """One REST call; returns the decoded JSON body or raises a typed ClusterError."""
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            method, url, headers, serialized, post = self._api.param_serialize(
                method,
                path,
                query_params=list((query or {}).items()),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(
                method, url, headers, serialized, post, _request_timeout=30
            )
            data = response.read()
        except ApiException as error:
            raise _typed(error.status, error.body, error.reason, method, path) from error
        except Exception as error:  # urllib3 connection errors and friends
            raise ClusterError(
                f"cannot reach the Kubernetes API at {self.server}: {error}",
                hint="check the kubeconfig context and that the cluster is up",
            ) from error
        if not 200 <= response.status < 300:
            raise _typed(response.status, data, response.reason, method, path)
        return json.loads(data) if data else {}

    def get(self, path: str) -> Json:
        return self.request("GET", path)

    def get_or_none(self, path: str) -> Json | None:
        try:
            return self.get(path)
        except NotFound:
            return None

    def create(self, collection: str, manifest: Json, *, dry_run: bool = False) -> Json:
        query = {"dryRun": "All"} if dry_run else None
        return self.request("POST", collection, manifest, query=query)

    def replace(self, path: str, manifest: Json) -> Json:
        """PUT with the manifest's resourceVersion: fails with :class:`Conflict` if stale."""
        return self.request("PUT", path, manifest)

    def delete(self, path: str, *, grace_period: int | None = None) -> bool:
        """Delete; ``False`` if it was already gone.

        ``grace_period=0`` on a Pod removes the object at once (the kubelet stops its
        containers after), instead of leaving it Terminating until the kubelet's own
        final delete — a request admission webhooks see like any other.
        """
        query = None if grace_period is None else {"gracePeriodSeconds": str(grace_period)}
        try:
            self.request("DELETE", path, query=query)
        except NotFound:
            return False
        return True

    def list(self, collection: str, *, label_selector: str | None = None) -> list[Json]:
        query = {"labelSelector": label_selector} if label_selector else None
        items = self.request("GET", collection, query=query).get("items") or []
        return list(items)

    def update(self, path: str, change: Callable[[Json], Json | None]) -> Json | None:
        """Read, transform and write back, re-reading on a resourceVersion conflict.

        ``change`` gets a copy of the current object and returns the new one (it may edit and
        return its argument), or ``None`` for "leave it"; it is called again after a
        conflict, so it must depend on nothing but its argument.
        Returns the object as stored, or ``None`` if the object does not exist.
        """
        for _ in range(_CONFLICT_RETRIES):
            current = self.get_or_none(path)
            if current is None:
                return None
            wanted = change(copy.deepcopy(current))  # in-place edits must not hide a change
            if wanted is None or wanted == current:
                return current
            try:
                return self.replace(path, wanted)
            except Conflict:
                continue
        raise ClusterError(
            f"{path} kept changing under us ({_CONFLICT_RETRIES} conflicts in a row)",
            hint="something rewrites it constantly; find the controller and pause it",
        )


def _typed(
    status: int | None, body: bytes | str | None, reason: str | None, method: str, path: str
) -> ClusterError:
    try:
        decoded = json.loads(body or "{}")
    except ValueError:
        decoded = {}
    message = (decoded.get("message") if isinstance(decoded, dict) else None) or reason
    text = f"{method} {path}: {message or f'HTTP {status}'}"
    if status == 404:
        return NotFound(text)
    if status == 409:
        return Conflict(text)
    # 403 also means "namespace terminating" or an admission refusal; only RBAC says "cannot".
    if status == 401 or (status == 403 and " cannot " in (message or "")):
        return ClusterError(
            text,
            hint="your kubeconfig user lacks the permission; webhook-dev needs to edit "
            "Services, Endpoints, EndpointSlices and webhook configurations (docs/up-and-down.md)",
        )
    return ClusterError(text)
