"""Fixtures for ``up``/``down`` on the lab: a webhook to redirect, and ``up`` as a real process.

``up`` runs in the lab's *workstation* namespace, as a developer's laptop would, reaching the
master only over the network; the test process (root namespace) plays the cluster's other
users: it creates Pods and inspects objects with admin credentials.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness import REPO, WEBHOOK_DEV, RunningProcess, stopped_at_exit
from tests.polling import wait_until
from webhook_dev.kube.cluster import Cluster
from webhook_dev.lab import Lab

WEBHOOK_API = "/apis/admissionregistration.k8s.io/v1"
Json = dict[str, Any]


@dataclass
class RedirectTarget:
    """A webhook configuration made for one test, and the Service it calls (unless ``url``)."""

    namespace: str
    service: str
    config: str
    entry: str
    kind: str = "mutating"  # or "validating"
    url: str | None = None

    @property
    def subject(self) -> str:
        """What ``up``/``down`` name the redirect by: the Service, or the config for url:."""
        return f"default/{self.config}" if self.url else f"{self.namespace}/{self.service}"

    @property
    def config_path(self) -> str:
        return f"{WEBHOOK_API}/{self.kind}webhookconfigurations/{self.config}"


def _bookkeeping_free(obj: Json) -> Json:
    """An object without what the apiserver changes on every write (compare content)."""
    clean = json.loads(json.dumps(obj))
    metadata = clean.get("metadata", {})
    for key in ("resourceVersion", "managedFields", "generation"):
        metadata.pop(key, None)
    return dict(clean)


def _record_content(record: Json | None) -> Json | None:
    """What a session's record says, without what each heartbeat rewrites (time, health)."""
    if record is None:
        return None
    annotations = record["metadata"].get("annotations") or {}
    kept = ("webhook-dev/journal", "webhook-dev/holder", "webhook-dev/session")
    return {key: annotations.get(key) for key in kept} | {"webhooks": record.get("webhooks")}


class ClusterView:
    """What the test (another user of the cluster) reads and writes."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def snapshot(self, target: RedirectTarget) -> Json:
        """Every object ``up`` may touch, as content (for before/after equality)."""
        lock_namespace, lock_name = target.subject.split("/")
        view: Json = {
            "config": _bookkeeping_free(self.cluster.get(target.config_path)),
            # up's record (journal and lock): present only during a session.
            "record": _record_content(
                self.cluster.get_or_none(
                    f"{WEBHOOK_API}/validatingwebhookconfigurations/"
                    f"webhook-dev.{lock_namespace}.{lock_name}"
                )
            ),
        }
        if target.url:
            return view
        core = f"/api/v1/namespaces/{target.namespace}"
        slices = self.cluster.list(
            f"/apis/discovery.k8s.io/v1/namespaces/{target.namespace}/endpointslices",
            label_selector=f"kubernetes.io/service-name={target.service}",
        )

        def ours(endpoint_slice: Json) -> bool:
            labels = endpoint_slice["metadata"].get("labels") or {}
            return labels.get("endpointslice.kubernetes.io/managed-by") == "webhook-dev"

        view.update(
            {
                "service": _bookkeeping_free(self.cluster.get(f"{core}/services/{target.service}")),
                "endpoints": _bookkeeping_free(
                    self.cluster.get(f"{core}/endpoints/{target.service}")
                ),
                "our_slices": [s["metadata"]["name"] for s in slices if ours(s)],
                "controller_slices": {
                    s["metadata"]["name"]: s.get("endpoints") for s in slices if not ours(s)
                },
            }
        )
        return view

    def create_pod(self, namespace: str, name: str, *, dry_run: bool = False) -> Json:
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
        }
        return self.cluster.create(
            f"/api/v1/namespaces/{namespace}/pods", manifest, dry_run=dry_run
        )


def container_names(pod: Json) -> list[str]:
    return [container["name"] for container in pod["spec"]["containers"]]


def up_process(lab: Lab, argv: list[str], env: dict[str, str], cwd: Path) -> RunningProcess:
    """``webhook-dev up`` in the workstation namespace, in a session of its own (so stopping
    it also reaches the ``ssh`` and workers it started)."""
    return RunningProcess(
        lab.workstation_argv([*WEBHOOK_DEV, *argv]),
        env=env,
        cwd=cwd,
        name="`up`",
        own_session=True,
    )


@pytest.fixture
def cluster_view(lab: Lab) -> ClusterView:
    return ClusterView(Cluster.connect(kubeconfig=str(lab.host_kubeconfig)))


def make_target(
    view: ClusterView,
    namespace: str,
    *,
    kind: str = "mutating",
    url: str | None = None,
) -> RedirectTarget:
    """A selector Service with a named port, and a webhook calling it for Pods in ``namespace``.

    ``kind="validating"`` makes a ValidatingWebhookConfiguration calling ``/validate``;
    ``url`` makes the entry call that URL instead of the Service.
    """
    target = RedirectTarget(
        namespace, "sidecar-injector", f"wd-{namespace}", "sidecar.webhook-dev.io", kind, url
    )
    cluster = view.cluster
    cluster.update(
        f"/api/v1/namespaces/{namespace}",
        lambda ns: {
            **ns,
            "metadata": {
                **ns["metadata"],
                "labels": {**ns["metadata"].get("labels", {}), "sidecar-inject": namespace},
            },
        },
    )
    cluster.create(
        f"/api/v1/namespaces/{namespace}/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": target.service, "namespace": namespace},
            "spec": {
                "selector": {"app": "sidecar-injector"},
                "ports": [{"name": "https", "port": 443, "targetPort": 8443}],
            },
        },
    )
    path = "/mutate" if kind == "mutating" else "/validate"
    client_config: Json = (
        {"url": url}
        if url
        else {
            "service": {"namespace": namespace, "name": target.service, "path": path, "port": 443}
        }
    )
    entry: Json = {
        "name": target.entry,
        "clientConfig": client_config,
        "rules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["pods"],
            }
        ],
        "namespaceSelector": {"matchLabels": {"sidecar-inject": namespace}},
        "failurePolicy": "Fail",
        "timeoutSeconds": 10,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    kind_name = (
        "MutatingWebhookConfiguration" if kind == "mutating" else ("ValidatingWebhookConfiguration")
    )
    cluster.create(
        target.config_path.rsplit("/", 1)[0],
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": kind_name,
            "metadata": {"name": target.config},
            "webhooks": [entry],
        },
    )
    if not url:
        wait_for_controller_slice(cluster, namespace, target.service)
    return target


def wait_for_controller_slice(cluster: Cluster, namespace: str, service: str) -> None:
    """Let the EndpointSlice controller make its slice for a selector Service, so "before"
    is what the cluster keeps (on a loaded machine that takes more than a second)."""
    wait_until(
        lambda: cluster.list(
            f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
            label_selector=f"kubernetes.io/service-name={service}",
        ),
        timeout=30,
        what=f"the EndpointSlice controller's slice for {namespace}/{service}",
    )
    time.sleep(0.5)  # and let the Endpoints controller write its (empty) Endpoints too


@pytest.fixture
def redirect_target(
    cluster_view: ClusterView, lab_namespace: str, request: pytest.FixtureRequest
) -> Iterator[RedirectTarget]:
    """A webhook to redirect, shaped by ``@pytest.mark.redirect_target(**make_target kwargs)``."""
    marker = request.node.get_closest_marker("redirect_target")
    target = make_target(cluster_view, lab_namespace, **(marker.kwargs if marker else {}))
    try:
        yield target
    finally:
        cluster_view.cluster.delete(target.config_path)


@pytest.fixture
def start_up(lab: Lab, state_dir: Path) -> Iterator[Any]:
    """Start ``up`` processes; every one is stopped (and the cluster restored) at the end."""
    with stopped_at_exit() as processes:

        def start(
            target: RedirectTarget,
            *extra: str,
            env: dict[str, str] | None = None,
            app: str | None = "sample_webhook.sidecar_injector",
            cwd: Path = REPO,
        ) -> RunningProcess:
            """``app=None``: no ``--app`` (pass ``--upstream ...`` in ``extra``)."""
            selector = ["--webhook", target.config] if target.url else ["--service", target.subject]
            argv = [
                "up",
                *selector,
                "--ssh",
                lab.ssh_destination,
                *(["--app", app] if app is not None else []),
                "--no-record",
                *extra,
            ]
            return processes.add(
                up_process(lab, argv, {"WEBHOOK_DEV_STATE_DIR": str(state_dir), **(env or {})}, cwd)
            )

        yield start


@pytest.fixture
def apps_namespace(cluster_view: ClusterView, lab_namespace: str) -> Iterator[str]:
    """Where the test's Pods go: the namespace the webhook intercepts."""
    name = f"{lab_namespace[:50]}-apps"
    cluster_view.cluster.create(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    wait_until(
        lambda: cluster_view.cluster.list(f"/api/v1/namespaces/{name}/serviceaccounts"),
        timeout=30,
        what=f"the default service account of {name}",
    )
    yield name
    cluster_view.cluster.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def apps_target(
    cluster_view: ClusterView, lab_namespace: str, apps_namespace: str
) -> Iterator[RedirectTarget]:
    """The sidecar webhook's Service in ``lab_namespace``, intercepting ``apps_namespace``:
    what ``up`` creates beside the Service (``--relay``'s Pod) is not sent to a webhook
    whose backend is not running."""
    target = make_target(cluster_view, lab_namespace)
    cluster = cluster_view.cluster

    def intercept_apps(config: Json) -> Json:
        for entry in config["webhooks"]:
            entry["namespaceSelector"] = {
                "matchLabels": {"kubernetes.io/metadata.name": apps_namespace}
            }
        return config

    cluster.update(target.config_path, intercept_apps)
    try:
        yield target
    finally:
        cluster.delete(target.config_path)
