"""``webhook-dev down``: restore the cluster from the journal, from any shell or machine."""

from __future__ import annotations

import sys

import click

from webhook_dev.commands.options import cluster_options, say, target_options
from webhook_dev.errors import ExitCode, UsageError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect import journal
from webhook_dev.redirect.personal import whoami
from webhook_dev.redirect.restore import (
    find_journals,
    orphan_locks,
    remove_stray_relays,
    restore_from_journal,
)
from webhook_dev.redirect.selection import Selection


@click.command()
@target_options
@click.option("--all", "everything", is_flag=True, help="Every redirect in this cluster.")
@cluster_options
def down(
    selection: Selection | None,
    everything: bool,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Restore the cluster from the journal, from any shell or machine. Safe to repeat.

    Where someone else changed a field during the session, it is left as they set it and
    reported; the exit code is then 1.

    Personal redirects (up --only-...) are restored only for your own Kubernetes user;
    a teammate's are named and left running, unless --all.
    """
    service = selection.service if selection else None
    webhook = selection.webhook if selection else None
    crds = selection.crds if selection else ()
    cluster = Cluster.connect(context, kubeconfig)
    found = find_journals(cluster)
    strays = remove_stray_relays(
        cluster,
        found,
        service.partition("/")[0] if service and not everything else None,
        say,
    )
    if service:
        found = [j for j in found if j.subject.base == service]
    elif webhook:
        name = webhook.partition("/")[0]
        found = [j for j in found if any(c.ref.name == name for c in j.plan.changes)]
    if crds:
        found = [j for j in found if any(c.ref.name in crds for c in j.plan.changes)]
    if not everything and any(j.owner for j in found):
        me = whoami(cluster)
        for record in [j for j in found if j.owner and j.owner != me]:
            say(
                f"left {record.subject}: a personal redirect of {record.holder}, not yours "
                "(pass --all to restore it too)"
            )
        found = [j for j in found if not j.owner or j.owner == me]
    if selection is None and not everything and len(found) > 1:
        listed = ", ".join(str(j.subject) for j in found)
        raise UsageError(
            f"several redirects are active ({listed})",
            hint="name one with --service NS/NAME, or pass --all",
        )
    leases_only = orphan_locks(cluster, found) if everything else []
    if service and not everything:
        leases_only = [
            s for s in orphan_locks(cluster, found) if s.base == service and not s.personal
        ]
    if not found and not leases_only:
        if strays:
            return
        say("nothing to restore: no webhook-dev journal in this cluster or on this machine")
        return
    clean = True
    for record in found:
        report = restore_from_journal(cluster, record, say)
        clean = clean and report.clean
    for subject in leases_only:
        journal.release_lease(cluster, subject)
        say(f"released the lock of {subject} (its session changed nothing)")
    if not clean:
        sys.exit(ExitCode.FAILED)
