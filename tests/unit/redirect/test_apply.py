"""The order ``up`` writes the redirect in and ``down`` undoes it, against an in-memory cluster.

The order is what keeps the cluster safe at every step (webhook_dev/redirect/apply.py):
``up`` relaxes the webhook entries before the Service loses its selector; ``down`` refills
Endpoints and slices before the selector returns and relaxes the entries last. A crash
between any two writes is covered by the lab tests; these pin the order itself, and what
``down`` does about third parties' changes, in milliseconds.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from webhook_dev.kube.cluster import Cluster, Conflict, NotFound
from webhook_dev.redirect.apply import apply_plan, restore_plan
from webhook_dev.redirect.conversions import CRD_COLLECTION, CRD_KIND
from webhook_dev.redirect.plan import MANAGED_BY_LABEL, RedirectPlan
from webhook_dev.redirect.plan_builder import (
    CONFIG_COLLECTIONS,
    CONTROLLER_MANAGER,
    MUTATING,
    VALIDATING,
    Snapshot,
    Target,
    build_plan,
    entries_for_service,
    slices_path,
)
from webhook_dev.tls import certs

Json = dict[str, Any]
THEIR_CA = certs.new_ca("their CA").cert_pem
OUR_CA = certs.new_ca("webhook-dev local CA").cert_pem
TARGET = Target(master_address="10.77.0.1", tunnel_port=31000, ca_pem=OUR_CA, session_id="s1")
CORE = "/api/v1/namespaces/hooks"


class InMemoryCluster(Cluster):
    """A Cluster whose REST calls go to a dict; it logs every write as ``VERB kind/name``.

    Only ``request`` is replaced, so ``update`` (read, change, write back, retry on a
    stale resourceVersion), ``get_or_none`` and ``delete`` run as they do for real.
    """

    def __init__(self, objects: list[Json]) -> None:
        super().__init__(api_client=None, context_name="in-memory")
        self.objects: dict[str, Json] = {}
        self.writes: list[str] = []
        self._version = 100
        for obj in objects:
            self.objects[url_of(obj)] = self._stamped(obj)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Json:
        if method == "GET" and path.rsplit("/", 1)[-1] in KINDS:
            return {"items": self._items(path, (query or {}).get("labelSelector"))}
        if method == "GET":
            return copy.deepcopy(self._existing(method, path))
        if method == "POST":
            path = f"{path}/{body['metadata']['name']}"
            if path in self.objects:
                raise Conflict(f"POST {path}: already exists")
        elif method == "PUT":
            stored = self._existing(method, path)
            sent = body["metadata"].get("resourceVersion")
            if sent != stored["metadata"]["resourceVersion"]:
                raise Conflict(f"PUT {path}: resourceVersion {sent} is stale")
        elif method == "DELETE":
            self._existing(method, path)
            del self.objects[path]
            self.writes.append(f"DELETE {short(path)}")
            return {}
        else:
            raise AssertionError(f"apply, restore and discovery should not {method} {path}")
        self.objects[path] = self._stamped(body)
        self.writes.append(f"{method} {short(path)}")
        return copy.deepcopy(self.objects[path])

    def _items(self, collection: str, label_selector: str | None) -> list[Json]:
        """A list call (discovery's): the collection's objects, ``key=value`` selected."""
        key, _, value = (label_selector or "").partition("=")
        return [
            copy.deepcopy(obj)
            for path, obj in sorted(self.objects.items())
            if path.rsplit("/", 1)[0] == collection
            and (not key or (obj["metadata"].get("labels") or {}).get(key) == value)
        ]

    def _existing(self, method: str, path: str) -> Json:
        if path not in self.objects:
            raise NotFound(f"{method} {path}: not found")
        return self.objects[path]

    def _stamped(self, obj: Json) -> Json:
        self._version += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(self._version)
        for empty_when_omitted in ("labels", "annotations"):  # Go's omitempty, as served
            if stored["metadata"].get(empty_when_omitted) == {}:
                del stored["metadata"][empty_when_omitted]
        return stored

    def edit(self, kind_and_name: str, change: Any) -> None:
        """Someone else's write during the session."""
        [path] = [path for path in self.objects if short(path) == kind_and_name]
        edited = copy.deepcopy(self.objects[path])
        change(edited)
        self.objects[path] = self._stamped(edited)

    def content(self) -> dict[str, Json]:
        """Every object without its resourceVersion, by ``kind/name``."""
        result = {}
        for path, obj in self.objects.items():
            clean = copy.deepcopy(obj)
            clean["metadata"].pop("resourceVersion", None)
            result[short(path)] = clean
        return result


KINDS = {
    "mutatingwebhookconfigurations": MUTATING,
    "validatingwebhookconfigurations": VALIDATING,
    "services": "Service",
    "endpoints": "Endpoints",
    "endpointslices": "EndpointSlice",
    "customresourcedefinitions": CRD_KIND,
}


def short(path: str) -> str:
    collection, name = path.rsplit("/", 2)[-2:]
    return f"{KINDS[collection]}/{name}"


def url_of(obj: Json) -> str:
    name = obj["metadata"]["name"]
    if obj["kind"] in CONFIG_COLLECTIONS:
        return f"{CONFIG_COLLECTIONS[obj['kind']]}/{name}"
    if obj["kind"] == CRD_KIND:
        return f"{CRD_COLLECTION}/{name}"
    if obj["kind"] == "EndpointSlice":
        return f"{slices_path('hooks')}/{name}"
    return f"{CORE}/{obj['kind'].lower()}s/{name}".replace("endpointss", "endpoints")


def webhook_configuration(kind: str, name: str) -> Json:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": f"{name}.example.com",
                "clientConfig": {
                    "service": {"namespace": "hooks", "name": "sidecar", "port": 443},
                    "caBundle": base64.b64encode(THEIR_CA).decode(),
                },
                "failurePolicy": "Fail",
                "timeoutSeconds": 10,
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }
        ],
    }


MUTATING_CONFIG = webhook_configuration(MUTATING, "sidecar-mutate")
VALIDATING_CONFIG = webhook_configuration(VALIDATING, "sidecar-validate")
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "sidecar", "namespace": "hooks"},
    "spec": {
        "selector": {"app": "sidecar"},
        "ports": [{"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}],
    },
}
ENDPOINTS = {
    "apiVersion": "v1",
    "kind": "Endpoints",
    "metadata": {"name": "sidecar", "namespace": "hooks"},
    "subsets": [{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"name": "https", "port": 8443}]}],
}
CONTROLLER_SLICE = {
    "apiVersion": "discovery.k8s.io/v1",
    "kind": "EndpointSlice",
    "metadata": {
        "name": "sidecar-abcde",
        "namespace": "hooks",
        "labels": {"kubernetes.io/service-name": "sidecar", MANAGED_BY_LABEL: CONTROLLER_MANAGER},
    },
    "addressType": "IPv4",
    "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}}],
    "ports": [{"name": "https", "port": 8443, "protocol": "TCP"}],
}
BEFORE = [MUTATING_CONFIG, VALIDATING_CONFIG, SERVICE, ENDPOINTS, CONTROLLER_SLICE]

UP_ORDER = [
    "PUT MutatingWebhookConfiguration/sidecar-mutate",
    "PUT ValidatingWebhookConfiguration/sidecar-validate",
    "PUT Service/sidecar",
    "PUT Endpoints/sidecar",
    "PUT EndpointSlice/sidecar-abcde",
    "POST EndpointSlice/sidecar-webhook-dev",
]
DOWN_ORDER = [
    "PUT Endpoints/sidecar",
    "PUT EndpointSlice/sidecar-abcde",
    "PUT Service/sidecar",
    "DELETE EndpointSlice/sidecar-webhook-dev",
    "PUT MutatingWebhookConfiguration/sidecar-mutate",
    "PUT ValidatingWebhookConfiguration/sidecar-validate",
]


def redirect_plan() -> RedirectPlan:
    configs = {(c["kind"], c["metadata"]["name"]): c for c in (MUTATING_CONFIG, VALIDATING_CONFIG)}
    snapshot = Snapshot(
        configs=copy.deepcopy(configs),
        entries=entries_for_service(configs, "hooks", "sidecar"),
        service=copy.deepcopy(SERVICE),
        endpoints=copy.deepcopy(ENDPOINTS),
        endpoint_slices=[copy.deepcopy(CONTROLLER_SLICE)],
    )
    # Through JSON, as down reads it back from the journal.
    return RedirectPlan.from_json(json.loads(json.dumps(build_plan(snapshot, TARGET).to_json())))


@pytest.fixture
def cluster() -> InMemoryCluster:
    return InMemoryCluster(BEFORE)


def redirected(cluster: InMemoryCluster) -> RedirectPlan:
    plan = redirect_plan()
    apply_plan(cluster, plan, lambda step: None)
    cluster.writes.clear()
    return plan


def entry(cluster: InMemoryCluster, kind_and_name: str) -> Json:
    webhooks: list[Json] = cluster.content()[kind_and_name]["webhooks"]
    return webhooks[0]


def test_up_relaxes_the_webhook_entries_before_the_service_loses_its_selector(
    cluster: InMemoryCluster,
) -> None:
    steps: list[str] = []
    seen_when_service_written: list[Json] = []

    def on_step(step: str) -> None:
        steps.append(step)
        if step == "Service/sidecar":
            mutating = entry(cluster, "MutatingWebhookConfiguration/sidecar-mutate")
            seen_when_service_written.append(mutating)

    apply_plan(cluster, redirect_plan(), on_step)

    assert cluster.writes == UP_ORDER
    assert steps == [write.split(" ", 1)[1] for write in UP_ORDER]
    [mutating] = seen_when_service_written
    assert mutating["failurePolicy"] == "Ignore" and mutating["timeoutSeconds"] == 5
    bundle = base64.b64decode(mutating["clientConfig"]["caBundle"])
    assert THEIR_CA in bundle and OUR_CA in bundle  # appended, not replaced


def test_up_leaves_the_service_selectorless_with_only_the_tunnel_behind_it(
    cluster: InMemoryCluster,
) -> None:
    redirected(cluster)
    now = cluster.content()
    assert "selector" not in now["Service/sidecar"]["spec"]
    assert now["Endpoints/sidecar"]["subsets"][0]["addresses"] == [{"ip": "10.77.0.1"}]
    assert now["EndpointSlice/sidecar-abcde"]["endpoints"] == []
    assert now["EndpointSlice/sidecar-webhook-dev"]["endpoints"][0]["addresses"] == ["10.77.0.1"]


def test_down_refills_endpoints_before_the_selector_and_relaxes_entries_last(
    cluster: InMemoryCluster,
) -> None:
    before = cluster.content()
    plan = redirected(cluster)
    steps: list[str] = []

    report = restore_plan(cluster, plan, steps.append)

    assert cluster.writes == DOWN_ORDER
    assert steps == [write.split(" ", 1)[1] for write in DOWN_ORDER]
    assert cluster.content() == before
    assert report.clean and report.already == []
    assert "EndpointSlice hooks/sidecar-webhook-dev (ours) deleted" in report.restored


def test_down_twice_writes_nothing_the_second_time(cluster: InMemoryCluster) -> None:
    before = cluster.content()
    plan = redirected(cluster)
    first = restore_plan(cluster, plan, lambda step: None)
    cluster.writes.clear()

    second = restore_plan(cluster, plan, lambda step: None)

    assert cluster.writes == []
    assert cluster.content() == before
    assert second.restored == [] and second.clean
    assert len(second.already) == len(first.restored)


def test_a_field_someone_else_changed_is_a_conflict_and_left_as_they_set_it(
    cluster: InMemoryCluster,
) -> None:
    plan = redirected(cluster)

    def their_timeout(config: Json) -> None:
        config["webhooks"][0]["timeoutSeconds"] = 7

    def their_selector(service: Json) -> None:
        service["spec"]["selector"] = {"app": "sidecar-v2"}

    cluster.edit("MutatingWebhookConfiguration/sidecar-mutate", their_timeout)
    cluster.edit("Service/sidecar", their_selector)

    report = restore_plan(cluster, plan, lambda step: None)

    now = cluster.content()
    assert now["MutatingWebhookConfiguration/sidecar-mutate"]["webhooks"][0]["timeoutSeconds"] == 7
    assert now["Service/sidecar"]["spec"]["selector"] == {"app": "sidecar-v2"}
    assert len(report.conflicts) == 2, report.conflicts
    assert any("sidecar-mutate" in c and "timeoutSeconds" in c for c in report.conflicts)
    assert any("Service hooks/sidecar" in c and "spec.selector" in c for c in report.conflicts)
    assert all("left as it is" in conflict for conflict in report.conflicts)
    # Everything else is back as it was.
    mutating = now["MutatingWebhookConfiguration/sidecar-mutate"]["webhooks"][0]
    assert mutating["failurePolicy"] == "Fail"
    assert base64.b64decode(mutating["clientConfig"]["caBundle"]) == THEIR_CA
    assert now["Endpoints/sidecar"]["subsets"] == ENDPOINTS["subsets"]


def test_our_slice_taken_over_by_someone_else_is_left_in_place(
    cluster: InMemoryCluster,
) -> None:
    plan = redirected(cluster)

    def adopt(endpoint_slice: Json) -> None:
        endpoint_slice["metadata"]["labels"][MANAGED_BY_LABEL] = "someone-else"
        endpoint_slice["endpoints"][0]["addresses"] = ["10.244.0.99"]

    cluster.edit("EndpointSlice/sidecar-webhook-dev", adopt)

    report = restore_plan(cluster, plan, lambda step: None)

    assert "EndpointSlice/sidecar-webhook-dev" in cluster.content()
    assert "DELETE EndpointSlice/sidecar-webhook-dev" not in cluster.writes
    assert report.conflicts == [
        "EndpointSlice hooks/sidecar-webhook-dev: changed by someone else; left in place"
    ]


def test_an_object_deleted_during_the_session_is_reported_not_recreated(
    cluster: InMemoryCluster,
) -> None:
    plan = redirected(cluster)
    del cluster.objects[url_of(VALIDATING_CONFIG)]

    report = restore_plan(cluster, plan, lambda step: None)

    assert "ValidatingWebhookConfiguration/sidecar-validate" not in cluster.content()
    assert report.conflicts == [
        "ValidatingWebhookConfiguration sidecar-validate: "
        "deleted by someone else during the session"
    ]


def test_up_again_after_a_crash_brings_our_slice_up_to_date_instead_of_failing(
    cluster: InMemoryCluster,
) -> None:
    """A crash after our slice was created: the next ``up`` replaces it (no 409)."""
    plan = redirected(cluster)
    cluster.edit("EndpointSlice/sidecar-webhook-dev", lambda s: s["endpoints"].clear())

    apply_plan(cluster, plan, lambda step: None)

    assert cluster.writes == ["PUT EndpointSlice/sidecar-webhook-dev"]  # the rest is as planned
    slice_now = cluster.content()["EndpointSlice/sidecar-webhook-dev"]
    assert slice_now["endpoints"][0]["addresses"] == ["10.77.0.1"]
