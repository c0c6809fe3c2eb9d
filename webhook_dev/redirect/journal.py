"""The crash-safe record of a redirect, and the lock that says who holds it.

Protocol 1 of docs/architecture.md: before ``up`` changes anything it writes a
:class:`Journal` holding the whole plan — every field's value before and during the
session — in two places:

* a local file under the state directory, written atomically and fsync'd, so ``down`` on this
  machine works even if the cluster copy could not be written;
* the session's *record* in the cluster, so ``down`` works from another shell or machine.

Protocol 7: our own bookkeeping must be webhook-proof. A ConfigMap or a Lease beside the
Service is what a webhook may intercept — Kubernetes' conformance layout puts a
ConfigMap-denying webhook's Service in the very namespace whose ConfigMaps it denies, and
policy engines match ``*`` — and while we redirect that webhook its in-cluster backend may
be absent, so such a write would time out before ``up`` even starts. The apiserver never
sends webhook configuration objects to webhooks, so the record is one: a
ValidatingWebhookConfiguration with no webhooks (it admits nothing and costs nothing),
named ``webhook-dev.<namespace>.<name>``, whose annotations hold the journal and the lock
(holder, session, renew time, duration and the session's health, like a Lease's fields).
Created with ``create`` (refused if it exists) and renewed with optimistic concurrency, it is
the one-holder lock; not renewed for its duration, it is stale: ``up --force`` may take over
(after restoring what the stale session left), and ``status`` says so.

A personal redirect (``--only-namespace``/``--only-user``/``--only-group``) holds a *scope*
of its subject, not all of it: its record is ``webhook-dev.<namespace>.<name>.<owner>.<token>``
(:attr:`Subject.personal`), and also carries the scope and the webhook entries it takes,
so the next ``up`` can refuse an overlapping scope naming its holder
(:func:`holdings`) while a disjoint one takes its own record.
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
from webhook_dev.kube.cluster import Cluster, Conflict
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


RECORDS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
_PREFIX = "webhook-dev/"
_JOURNAL = f"{_PREFIX}journal"
_HOLDER = f"{_PREFIX}holder"
_SESSION = f"{_PREFIX}session"
_RENEWED = f"{_PREFIX}renew-time"
_DURATION = f"{_PREFIX}lease-seconds"
_SUBJECT = f"{_PREFIX}subject"
_DESCRIPTION = f"{_PREFIX}description"
_SCOPE = f"{_PREFIX}scope"
_ENTRIES = f"{_PREFIX}entries"
_PERSONAL = f"{_PREFIX}personal"
_LOCK_KEYS = (_HOLDER, _SESSION, _RENEWED, _DURATION)
_RECORD_KEYS = {*_LOCK_KEYS, _JOURNAL, _SUBJECT, _DESCRIPTION, _SCOPE, _ENTRIES, _PERSONAL}


@dataclass(frozen=True)
class Subject:
    """What a session redirects: named after its Service (or config, for ``url:`` entries),
    and for a personal redirect whose scope of it (``<owner>.<token>``)."""

    namespace: str
    name: str
    personal: str | None = None

    @property
    def base(self) -> str:
        """The Service (or config) alone, whoever's scope: what ``--service`` names."""
        return f"{self.namespace}/{self.name}"

    @property
    def object_name(self) -> str:
        """The record's name: ``webhook-dev.<namespace>.<name>[.<owner>.<token>]``."""
        name = f"webhook-dev.{self.namespace}.{self.name}".lower()
        if self.personal:
            name = f"{name}.{self.personal}"
        if len(name) <= 253:
            return name
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        return f"{name[:242].rstrip('-.')}.{digest}"

    def __str__(self) -> str:
        return f"{self.base} [{self.personal}]" if self.personal else self.base


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
    scope: dict[str, list[str]] | None = None  # a personal redirect's Scope.to_json()
    owner: str | None = None  # the Kubernetes user of a personal redirect

    def to_json(self) -> Json:
        subject: Json = {"namespace": self.subject.namespace, "name": self.subject.name}
        if self.subject.personal:
            subject["personal"] = self.subject.personal
        return {
            "version": JOURNAL_VERSION,
            "subject": subject,
            "scope": self.scope,
            "owner": self.owner,
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
            subject=Subject(subject["namespace"], subject["name"], subject.get("personal")),
            session_id=data["session"],
            holder=data["holder"],
            context=data["context"],
            server=data["server"],
            plan=RedirectPlan.from_json(data["plan"]),
            created=data["created"],
            tunnel=data.get("tunnel") or {},
            recording=data.get("recording"),
            scope=data.get("scope"),
            owner=data.get("owner"),
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


# --- the record in the cluster: journal and lock ---------------------------------------------


def record_path(subject: Subject) -> str:
    return f"{RECORDS}/{subject.object_name}"


def _annotations(record: Json) -> dict[str, str]:
    return dict(record["metadata"].get("annotations") or {})


def write_cluster(cluster: Cluster, journal: Journal) -> None:
    """Put the journal in the session's record; the lock (:func:`acquire_lease`) made it."""

    def with_journal(record: Json) -> Json:
        annotations = record["metadata"].setdefault("annotations", {})
        annotations[_JOURNAL] = json.dumps(journal.to_json(), separators=(",", ":"))
        return record

    if cluster.update(record_path(journal.subject), with_journal) is None:
        raise HeldError(
            f"the record of {journal.subject} vanished before its journal was written "
            "(taken down from elsewhere?)",
            hint="nothing was changed; run `webhook-dev up` again",
        )


def read_cluster(cluster: Cluster, subject: Subject) -> Journal | None:
    record = cluster.get_or_none(record_path(subject))
    return None if record is None else _journal_of(record)


def read_cluster_all(cluster: Cluster) -> list[Journal]:
    found = []
    for record in _records(cluster):
        journal = _journal_of(record)
        if journal is not None:
            found.append(journal)
    return found


def unjournaled_locks(cluster: Cluster) -> list[Subject]:
    """Subjects locked by a session that died before writing its journal (nothing changed)."""
    return [_subject_of(record) for record in _records(cluster) if _journal_of(record) is None]


def _records(cluster: Cluster) -> list[Json]:
    return cluster.list(RECORDS, label_selector=f"{MANAGED_LABEL}=webhook-dev")


def _journal_of(record: Json) -> Journal | None:
    text = _annotations(record).get(_JOURNAL)
    if not text:
        return None
    name = record["metadata"]["name"]
    return Journal.from_json(json.loads(text), source=f"ValidatingWebhookConfiguration {name}")


def _subject_of(record: Json) -> Subject:
    annotations = _annotations(record)
    namespace, _, name = annotations.get(_SUBJECT, "/").partition("/")
    return Subject(namespace, name, annotations.get(_PERSONAL) or None)


@dataclass(frozen=True)
class Holding:
    """Another session's claim, as its record says: for refusing an overlapping ``up``."""

    subject: Subject
    holder: str
    entries: frozenset[str]  # "config/entry" it redirects
    scope: dict[str, list[str]] | None  # None: the whole subject
    created: str
    record_name: str


def holdings(cluster: Cluster) -> list[Holding]:
    """Every session's claim in the cluster: whole redirects and personal ones."""
    found = []
    for record in _records(cluster):
        annotations = _annotations(record)
        journal = _journal_of(record)
        entries = set(json.loads(annotations.get(_ENTRIES) or "[]"))
        if not entries and journal is not None:  # a record from before entries were kept
            entries = {
                f"{change.ref.name}/{change.path[1][1]}"
                for change in journal.plan.changes
                if len(change.path) > 1 and isinstance(change.path[1], tuple)
            }
        scope_text = annotations.get(_SCOPE)
        found.append(
            Holding(
                subject=_subject_of(record),
                holder=annotations.get(_HOLDER, "?"),
                entries=frozenset(entries),
                scope=json.loads(scope_text) if scope_text else None,
                created=record["metadata"].get("creationTimestamp", ""),
                record_name=record["metadata"]["name"],
            )
        )
    return found


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
    record = cluster.get_or_none(record_path(subject))
    if record is None:
        return None
    annotations = _annotations(record)
    renewed = annotations.get(_RENEWED) or record["metadata"]["creationTimestamp"]
    health_keys = set(annotations) - _RECORD_KEYS
    return LeaseState(
        holder=annotations.get(_HOLDER, "?"),
        renewed=_parse_time(renewed),
        duration=timedelta(seconds=int(annotations.get(_DURATION) or LEASE_SECONDS)),
        session_id=annotations.get(_SESSION, ""),
        health={
            key.removeprefix(_PREFIX): annotations[key]
            for key in sorted(health_keys)
            if key.startswith(_PREFIX)
        },
    )


def acquire_lease(
    cluster: Cluster,
    subject: Subject,
    holder: str,
    session_id: str,
    *,
    force: bool,
    entries: list[str] | None = None,
    scope: dict[str, list[str]] | None = None,
) -> None:
    """Take the lock, or raise :class:`HeldError` naming who has it.

    ``entries`` ("config/entry") and a personal redirect's ``scope`` go into the record, so
    other sessions can tell whether they would overlap with this one.
    """
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
        cluster.delete(record_path(subject))
    now = _format_time(_now())
    record: Json = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {
            "name": subject.object_name,
            "labels": {MANAGED_LABEL: "webhook-dev"},
            "annotations": {
                _DESCRIPTION: "webhook-dev's journal and lock for a redirect of "
                f"{subject}; it has no webhooks. `webhook-dev down` removes it.",
                _SUBJECT: subject.base,
                _HOLDER: holder,
                _SESSION: session_id,
                _RENEWED: now,
                _DURATION: str(lease_seconds()),
                _ENTRIES: json.dumps(sorted(entries or [])),
                **({_SCOPE: json.dumps(scope)} if scope is not None else {}),
                **({_PERSONAL: subject.personal} if subject.personal else {}),
            },
        },
        "webhooks": [],
    }
    try:
        cluster.create(RECORDS, record)
    except Conflict as error:  # created by another session since we looked
        taker = read_lease(cluster, subject)
        raise HeldError(
            f"{subject} was just taken by {taker.holder if taker else 'another session'}",
            hint="stop that session first, or run `webhook-dev down --service "
            f"{subject}` from here",
        ) from error


def renew_lease(
    cluster: Cluster, subject: Subject, session_id: str, health: dict[str, str] | None = None
) -> bool:
    """Heartbeat; ``False`` if the record is gone or was taken over (the session must stop).

    ``health`` (transport state, call count, last call) is published as annotations, so
    ``status`` from any shell or machine sees it.
    """

    def renewed(record: Json) -> Json | None:
        annotations = record["metadata"].setdefault("annotations", {})
        if annotations.get(_SESSION) != session_id:
            return None
        annotations.update({f"{_PREFIX}{key}": value for key, value in (health or {}).items()})
        annotations[_RENEWED] = _format_time(_now())
        return record

    result = cluster.update(record_path(subject), renewed)
    return result is not None and _annotations(result).get(_SESSION) == session_id


def release_lease(cluster: Cluster, subject: Subject) -> bool:
    """Drop the record, journal and lock together; ``False`` if it was already gone."""
    return cluster.delete(record_path(subject))


def _now() -> datetime:
    return datetime.now(UTC)


def _format_time(moment: datetime) -> str:
    """MicroTime, as Lease wants it: RFC 3339 with microseconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
