"""The labels of the cluster's Namespaces, kept current by a list and a watch, and attached
to each admission exchange ``up`` records.

An admission policy's ``namespaceSelector`` and ``namespaceObject`` read the request's
Namespace, which the AdmissionReview does not carry; ``replay --policy`` needs it from the
recording or counts the request as not compared. ``up`` has the cluster, so it keeps the
labels in memory (a thread lists and watches Namespaces: one watch for the whole session)
and a dict lookup attaches them after the answer went back — nothing on the answer's path,
no call to the apiserver per request.

Never a guess: a Namespace the cache has not seen (not listed yet, or the watch is behind)
leaves the exchange without labels, as does a cluster-scoped request. A user who may not
list Namespaces gets one warning and recordings without them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from webhook_dev.kube.cluster import Cluster
from webhook_dev.reviews import kinds
from webhook_dev.reviews.exchange import Event, Exchange, Hooks

# A watch is re-opened this often (the apiserver ends it anyway) and after an error.
_WATCH_SECONDS = 240
_RETRY_SECONDS = 2.0
_FIRST_LIST_SECONDS = 10.0


class NamespaceLabels:
    """A stage of the serving stack (:class:`~webhook_dev.serving.stack.Stage`) setting
    :attr:`Exchange.namespace_labels` from the cache."""

    def __init__(self, cluster: Cluster, say: Callable[[str], None]) -> None:
        self._core = client.CoreV1Api(cluster.api_client)
        self._say = say
        self._labels: dict[str, dict[str, str]] = {}
        self._listed = threading.Event()
        self._stopping = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name="namespace-labels", daemon=True)
        self._downstream = Hooks()

    def start(self) -> None:
        """Start watching and wait (a little) for the first list, so the first calls
        already find their Namespace."""
        self._thread.start()
        self._listed.wait(_FIRST_LIST_SECONDS)

    def close(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()

    def labels(self, namespace: str) -> dict[str, str] | None:
        """The Namespace's labels, or ``None`` when the cache has not seen it."""
        found = self._labels.get(namespace)
        return dict(found) if found is not None else None

    # --- the stage ---------------------------------------------------------------------------

    def attach(self, downstream: Hooks) -> None:
        self._downstream = downstream

    def on_exchange(self, exchange: Exchange) -> None:
        if exchange.namespace_labels is None and exchange.review_kind is kinds.ADMISSION:
            namespace = exchange.request.get("namespace")
            if isinstance(namespace, str) and namespace:
                exchange.namespace_labels = self.labels(namespace)
        self._downstream.exchange(exchange)

    def on_event(self, event: Event) -> None:
        self._downstream.event(event)

    async def drain(self) -> None:
        self.close()

    # --- the watch (its own thread: the client is synchronous) ----------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                version = self._list()
                self._follow(version)
            except ApiException as error:
                if error.status in (401, 403):
                    self._say(
                        "warning: cannot list Namespaces "
                        f"({error.status} {error.reason}): the recording holds no namespace "
                        "labels, so replay --policy will not compare policies that read them"
                    )
                    self._listed.set()
                    return
                self._stopping.wait(_RETRY_SECONDS)  # 410 Gone and the rest: list again
            except Exception:  # the connection dropped: list again after a pause
                self._stopping.wait(_RETRY_SECONDS)

    def _list(self) -> str:
        listed = self._core.list_namespace(_request_timeout=30)
        self._labels = {
            item.metadata.name: dict(item.metadata.labels or {}) for item in listed.items
        }
        self._listed.set()
        return str(listed.metadata.resource_version)

    def _follow(self, version: str) -> None:
        self._watch = watch.Watch()
        events: Any = self._watch.stream(
            self._core.list_namespace,
            resource_version=version,
            timeout_seconds=_WATCH_SECONDS,
            allow_watch_bookmarks=True,
        )
        for event in events:
            if self._stopping.is_set():
                return
            kind, item = event["type"], event["object"]
            if kind == "ERROR":
                return  # e.g. 410 Gone: list again
            name = item.metadata.name
            if kind == "DELETED":
                self._labels.pop(name, None)
            elif kind in ("ADDED", "MODIFIED"):
                self._labels[name] = dict(item.metadata.labels or {})
