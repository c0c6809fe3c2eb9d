"""``down``'s work, shared with ``up``: find the journals, restore, release. No SSH, no HTTP
server, so ``webhook-dev down`` starts fast."""

from __future__ import annotations

from collections.abc import Callable

from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect import journal
from webhook_dev.redirect.apply import RestoreReport, restore_plan

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
