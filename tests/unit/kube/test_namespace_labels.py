"""The namespace-label stage: what ``up`` attaches to an exchange, from its cache only."""

from __future__ import annotations

from typing import Any

from webhook_dev.kube.cluster import Cluster
from webhook_dev.kube.namespace_labels import NamespaceLabels
from webhook_dev.reviews.exchange import Exchange, Hooks, now


class Seen:
    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def on_exchange(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)


def exchange(namespace: str | None) -> Exchange:
    request: dict[str, Any] = {
        "uid": "u",
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "resource": {"group": "", "version": "v1", "resource": "configmaps"},
        "operation": "CREATE",
        "userInfo": {},
    }
    if namespace is not None:
        request["namespace"] = namespace
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    return Exchange(id="x", started=now(), path="/validate", request_review=review)


def stage() -> tuple[NamespaceLabels, Seen]:
    from kubernetes.client import ApiClient

    labels = NamespaceLabels(Cluster(ApiClient(), "test"), lambda _line: None)
    labels._labels = {"team-a": {"policy-lab": "on"}}
    seen = Seen()
    labels.attach(Hooks([seen]))
    return labels, seen


def test_an_exchange_in_a_known_namespace_gets_its_labels_and_is_passed_on() -> None:
    labels, seen = stage()
    labels.on_exchange(exchange("team-a"))
    assert [e.namespace_labels for e in seen.exchanges] == [{"policy-lab": "on"}]


def test_an_unseen_namespace_or_a_cluster_scoped_request_gets_no_labels_never_a_guess() -> None:
    labels, seen = stage()
    labels.on_exchange(exchange("not-listed-yet"))
    labels.on_exchange(exchange(None))
    assert [e.namespace_labels for e in seen.exchanges] == [None, None]
