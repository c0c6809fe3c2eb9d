"""``down``'s work, shared with ``up``: find the journals, restore, release. No SSH, no HTTP
server, so ``webhook-dev down`` starts fast."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from webhook_dev.errors import ClusterError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect import journal
from webhook_dev.redirect.apply import RestoreReport, restore_plan
from webhook_dev.tunnel import relay_manifests
from webhook_dev.tunnel.relay import POD_READY_TIMEOUT

Say = Callable[[str], None]


def restore_from_journal(cluster: Cluster, record: journal.Journal, say: Say) -> RestoreReport:
    """Restore from a journal alone, then drop the journal and the lock. Idempotent."""
    report = restore_plan(cluster, record.plan, lambda step: None)
    journal.release_lease(cluster, record.subject)  # the record: journal and lock
    journal.remove_local(record)
    for line in report.conflicts:
        say(f"conflict: {line}")
    say(
        f"restored {record.subject}: {len(report.restored)} changes undone, "
        f"{len(report.already)} already as before, {len(report.conflicts)} conflicts"
    )
    return report


def find_journals(cluster: Cluster) -> list[journal.Journal]:
    """Cluster journals, plus local ones for this cluster the cluster never got."""
    by_subject = {str(j.subject): j for j in journal.read_cluster_all(cluster)}
    for record in journal.read_local_all():
        if record.server == cluster.server:
            by_subject.setdefault(str(record.subject), record)
    return list(by_subject.values())


def orphan_locks(cluster: Cluster, found: list[journal.Journal]) -> list[journal.Subject]:
    """Locks of sessions that died before journaling (they changed nothing), not in ``found``."""
    known = {str(j.subject) for j in found}
    return [s for s in journal.unjournaled_locks(cluster) if str(s) not in known]


#: A relay no journal names is a stray once this old: younger, it may belong to an ``up``
#: still waiting for its Pod, which journals it moments later.
STRAY_AFTER = timedelta(seconds=POD_READY_TIMEOUT + 60)
STRAY_ENV = "WEBHOOK_DEV_RELAY_STRAY_SECONDS"  # tests: a shorter STRAY_AFTER


def _stray_after() -> timedelta:
    override = os.environ.get(STRAY_ENV)
    return timedelta(seconds=float(override)) if override else STRAY_AFTER


def remove_stray_relays(
    cluster: Cluster, journals: list[journal.Journal], namespace: str | None, say: Say
) -> int:
    """Delete ``--relay`` objects that no journal names: left by an ``up`` killed between
    creating its relay and writing its journal. Only in ``namespace`` (all, if None).

    Returns how many relays were removed; a user who may not list them is told nothing.
    """
    named = {
        (create.ref.kind, create.ref.url)
        for record in journals
        for create in record.plan.creates
        if create.adopt
    }
    where = f"/api/v1/namespaces/{namespace}" if namespace else "/api/v1"
    selector = (
        f"{relay_manifests.MANAGED_LABEL}=webhook-dev,{relay_manifests.COMPONENT_LABEL}=relay"
    )
    now = datetime.now(UTC)
    removed = 0
    try:
        for kind, plural in (("Pod", "pods"), ("ConfigMap", "configmaps")):
            for item in cluster.list(f"{where}/{plural}", label_selector=selector):
                metadata = item["metadata"]
                url = f"/api/v1/namespaces/{metadata['namespace']}/{plural}/{metadata['name']}"
                created = datetime.fromisoformat(
                    metadata.get("creationTimestamp", now.isoformat()).replace("Z", "+00:00")
                )
                if (kind, url) in named or now - created < _stray_after():
                    continue
                if cluster.delete(url, grace_period=0):
                    removed += 1
                    say(
                        f"removed {kind} {metadata['namespace']}/{metadata['name']}: a relay "
                        "no session journaled (its up was killed before its journal)"
                    )
    except ClusterError:
        return removed
    return removed
