"""The crash-safe record of a redirect, and the lock that says who holds it.

Protocol 1 of docs/architecture.md: before ``up`` changes anything it writes a
:class:`Journal` holding the whole plan — every field's value before and during the
session — in two places:

* a local file under the state directory, written atomically and fsync'd, so ``down`` on this
  machine works even if the cluster journal could not be written;
* a ConfigMap ``webhook-dev-<name>`` beside the Service, so ``down`` works from another shell
  or machine.

The holder lock is a ``coordination.k8s.io/v1`` Lease of the same name, renewed while the
session lives. A Lease not renewed for its duration is stale: ``up --force`` may take over
(after restoring what the stale session left), and ``status`` says so.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from webhook_dev.errors import HeldError, JournalError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.paths import ensure_private_dir, state_dir, write_private
from webhook_dev.redirect.plan import Json, RedirectPlan

JOURNAL_VERSION = 1
MANAGED_LABEL = "app.kubernetes.io/managed-by"
LEASE_SECONDS = 30


def lease_seconds() -> int:
    """How long a session's Lease lasts unrenewed (``$WEBHOOK_DEV_LEASE_SECONDS``, default 30).

    Shorter means a crashed session is stale (``up --force`` may take over) sooner; the
    session renews three times per duration.
    """
    return int(os.environ.get("WEBHOOK_DEV_LEASE_SECONDS") or LEASE_SECONDS)


_COORDINATION = "/apis/coordination.k8s.io/v1"


@dataclass(frozen=True)
class Subject:
    """What a session redirects: named after its Service (or config, for ``url:`` entries)."""

    namespace: str
    name: str

    @property
    def object_name(self) -> str:
        return f"webhook-dev-{self.name}"[:63].rstrip("-.")

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class Journal:
    """Everything ``down`` needs, and nothing it must ask the user for."""

    subject: Subject
    session_id: str
    holder: str
    context: str
    server: str
    plan: RedirectPlan
    created: str = field(default_factory=lambda: _now().isoformat())
    tunnel: dict[str, Any] = field(default_factory=dict)
    recording: str | None = None

    def to_json(self) -> Json:
        return {
            "version": JOURNAL_VERSION,
            "subject": {"namespace": self.subject.namespace, "name": self.subject.name},
            "session": self.session_id,
            "holder": self.holder,
            "context": self.context,
            "server": self.server,
            "created": self.created,
            "tunnel": self.tunnel,
            "recording": self.recording,
            "plan": self.plan.to_json(),
        }

    @classmethod
    def from_json(cls, data: Json, *, source: str) -> Journal:
        if data.get("version") != JOURNAL_VERSION:
            raise JournalError(
                f"journal {source} has format version {data.get('version')!r}; this "
                f"webhook-dev reads version {JOURNAL_VERSION}",
                hint="run `down` with the webhook-dev version that ran `up`",
            )
        subject = data["subject"]
        return cls(
            subject=Subject(subject["namespace"], subject["name"]),
            session_id=data["session"],
            holder=data["holder"],
            context=data["context"],
            server=data["server"],
            plan=RedirectPlan.from_json(data["plan"]),
            created=data["created"],
            tunnel=data.get("tunnel") or {},
            recording=data.get("recording"),
        )


def holder_identity() -> str:
    """Who holds a redirect, as a person reads it: ``user@host (pid N)``."""
    return f"{getpass.getuser()}@{socket.gethostname()} (pid {os.getpid()})"


# --- local copy -----------------------------------------------------------------------------


def local_path(server: str, subject: Subject) -> Path:
    digest = hashlib.sha256(f"{server} {subject}".encode()).hexdigest()[:12]
    folder = ensure_private_dir(state_dir() / "journals")
    return folder / f"{subject.namespace}-{subject.name}-{digest}.json"


def write_local(journal: Journal) -> Path:
    path = local_path(journal.server, journal.subject)
    write_private(path, json.dumps(journal.to_json(), indent=2).encode())
    return path


def read_local_all() -> list[Journal]:
    folder = state_dir() / "journals"
    journals = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        journals.append(Journal.from_json(json.loads(path.read_text()), source=str(path)))
    return journals


def remove_local(journal: Journal) -> None:
    local_path(journal.server, journal.subject).unlink(missing_ok=True)


# --- cluster copy and lock ------------------------------------------------------------------


def _configmaps(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps"


def _leases(namespace: str) -> str:
    return f"{_COORDINATION}/namespaces/{namespace}/leases"


def write_cluster(cluster: Cluster, journal: Journal) -> None:
    subject = journal.subject
    manifest: Json = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": subject.object_name,
            "namespace": subject.namespace,
            "labels": {MANAGED_LABEL: "webhook-dev"},
            "annotations": {"webhook-dev/holder": journal.holder},
        },
        "data": {"journal.json": json.dumps(journal.to_json(), indent=2)},
    }
    path = f"{_configmaps(subject.namespace)}/{subject.object_name}"
    existing = cluster.get_or_none(path)
    if existing is None:
        cluster.create(_configmaps(subject.namespace), manifest)
    else:
        manifest["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        cluster.replace(path, manifest)


def read_cluster(cluster: Cluster, subject: Subject) -> Journal | None:
    path = f"{_configmaps(subject.namespace)}/{subject.object_name}"
    configmap = cluster.get_or_none(path)
    if configmap is None or "journal.json" not in (configmap.get("data") or {}):
        return None
    return Journal.from_json(json.loads(configmap["data"]["journal.json"]), source=path)


def read_cluster_all(cluster: Cluster) -> list[Journal]:
    found = []
    for configmap in cluster.list(
        "/api/v1/configmaps", label_selector=f"{MANAGED_LABEL}=webhook-dev"
    ):
        text = (configmap.get("data") or {}).get("journal.json")
        if text:
            name = f"{configmap['metadata']['namespace']}/{configmap['metadata']['name']}"
            found.append(Journal.from_json(json.loads(text), source=f"ConfigMap {name}"))
    return found


def remove_cluster(cluster: Cluster, subject: Subject) -> None:
    cluster.delete(f"{_configmaps(subject.namespace)}/{subject.object_name}")


@dataclass(frozen=True)
class LeaseState:
    holder: str
    renewed: datetime
    duration: timedelta
    session_id: str
    health: dict[str, str] = field(default_factory=dict)

    def is_stale(self, now: datetime | None = None) -> bool:
        return (now or _now()) > self.renewed + self.duration


def read_lease(cluster: Cluster, subject: Subject) -> LeaseState | None:
    lease = cluster.get_or_none(f"{_leases(subject.namespace)}/{subject.object_name}")
    if lease is None:
        return None
    spec = lease.get("spec") or {}
    renewed = (
        spec.get("renewTime") or spec.get("acquireTime") or lease["metadata"]["creationTimestamp"]
    )
    return LeaseState(
        holder=spec.get("holderIdentity", "?"),
        renewed=_parse_time(renewed),
        duration=timedelta(seconds=spec.get("leaseDurationSeconds", LEASE_SECONDS)),
        session_id=(lease["metadata"].get("annotations") or {}).get("webhook-dev/session", ""),
    )


def acquire_lease(
    cluster: Cluster, subject: Subject, holder: str, session_id: str, *, force: bool
) -> None:
    """Take the lock, or raise :class:`HeldError` naming who has it."""
    current = read_lease(cluster, subject)
    if current is not None:
        if not force:
            state = "stale: its session stopped renewing" if current.is_stale() else "live"
            raise HeldError(
                f"{subject} is already redirected by {current.holder} "
                f"(lease renewed {current.renewed:%Y-%m-%d %H:%M:%S} UTC, {state})",
                hint="stop that session, or run `webhook-dev down --service "
                f"{subject}`; `up --force` takes over a stale session",
            )
        if not current.is_stale():
            raise HeldError(
                f"{subject} is held by a live session of {current.holder}; --force only takes "
                "over a stale one",
                hint=f"stop it there, or wait {current.duration.seconds}s after it dies",
            )
        cluster.delete(f"{_leases(subject.namespace)}/{subject.object_name}")
    now = _format_time(_now())
    cluster.create(
        _leases(subject.namespace),
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": subject.object_name,
                "namespace": subject.namespace,
                "labels": {MANAGED_LABEL: "webhook-dev"},
                "annotations": {"webhook-dev/session": session_id},
            },
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": lease_seconds(),
                "acquireTime": now,
                "renewTime": now,
            },
        },
    )


def renew_lease(
    cluster: Cluster, subject: Subject, session_id: str, health: dict[str, str] | None = None
) -> bool:
    """Heartbeat; ``False`` if the lease is gone or was taken over (the session must stop).

    ``health`` (tunnel state, call count, last call) is published as annotations, so
    ``status`` from any shell or machine sees it.
    """

    def renewed(lease: Json) -> Json | None:
        annotations = lease["metadata"].setdefault("annotations", {})
        if annotations.get("webhook-dev/session") != session_id:
            return None
        annotations.update({f"webhook-dev/{key}": value for key, value in (health or {}).items()})
        lease["spec"]["renewTime"] = _format_time(_now())
        return lease

    result = cluster.update(f"{_leases(subject.namespace)}/{subject.object_name}", renewed)
    return result is not None and (
        (result["metadata"].get("annotations") or {}).get("webhook-dev/session") == session_id
    )


def release_lease(cluster: Cluster, subject: Subject) -> bool:
    """Drop the lock; ``False`` if it was already gone."""
    return cluster.delete(f"{_leases(subject.namespace)}/{subject.object_name}")


def _now() -> datetime:
    return datetime.now(UTC)


def _format_time(moment: datetime) -> str:
    """MicroTime, as Lease wants it: RFC 3339 with microseconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
