"""``webhook-dev down`` and ``webhook-dev status``: from any shell or machine."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from webhook_dev.commands.options import cluster_options, say, target_options
from webhook_dev.errors import UsageError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect import journal
from webhook_dev.redirect import plan_builder as redirect
from webhook_dev.redirect.restore import find_journals, orphan_leases, take_down


@click.command()
@target_options
@click.option("--all", "everything", is_flag=True, help="Every redirect in this cluster.")
@cluster_options
def down(
    webhook: str | None,
    service: str | None,
    everything: bool,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Restore the cluster from the journal, from any shell or machine. Safe to repeat.

    Where someone else changed a field during the session, it is left as they set it and
    reported; the exit code is then 1.
    """
    cluster = Cluster.connect(context, kubeconfig)
    found = find_journals(cluster)
    if service:
        found = [j for j in found if str(j.subject) == service]
    elif webhook:
        name = webhook.partition("/")[0]
        found = [j for j in found if any(c.ref.name == name for c in j.plan.changes)]
    elif not everything and len(found) > 1:
        listed = ", ".join(str(j.subject) for j in found)
        raise UsageError(
            f"several redirects are active ({listed})",
            hint="name one with --service NS/NAME, or pass --all",
        )
    leases_only = orphan_leases(cluster, found) if (everything or service) else []
    if not found and not leases_only:
        say("nothing to restore: no webhook-dev journal in this cluster or on this machine")
        return
    clean = True
    for record in found:
        report = take_down(cluster, record, say)
        clean = clean and report.clean
    for subject in leases_only:
        journal.release_lease(cluster, subject)
        say(f"released the lock of {subject} (its session changed nothing)")
    if not clean:
        sys.exit(1)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@cluster_options
def status(as_json: bool, context: str | None, kubeconfig: str | None) -> None:
    """Who holds which redirect, since when, tunnel health and calls."""
    cluster = Cluster.connect(context, kubeconfig)
    rows: list[dict[str, Any]] = []
    for record in find_journals(cluster):
        lease = journal.read_lease(cluster, record.subject)
        rows.append(
            {
                "subject": str(record.subject),
                "holder": record.holder,
                "since": record.created,
                "webhooks": sorted(
                    {
                        c.ref.name
                        for c in record.plan.changes
                        if c.ref.kind in redirect.CONFIG_COLLECTIONS
                    }
                ),
                "tunnel": record.tunnel,
                "recording": record.recording,
                "lease": None
                if lease is None
                else {
                    "renewed": lease.renewed.isoformat(),
                    "stale": lease.is_stale(),
                    **lease.health,
                },
            }
        )
    if as_json:
        click.echo(json.dumps({"context": cluster.context_name, "redirects": rows}, indent=2))
        return
    if not rows:
        click.echo(f"no redirects in context {cluster.context_name}")
        return
    now = datetime.now(UTC)
    for row in rows:
        lease = row["lease"]
        state = (
            "no lease: the session died; run `webhook-dev down`"
            if lease is None
            else "STALE: the session stopped renewing; run `webhook-dev down`"
            if lease["stale"]
            else f"live, tunnel {lease.get('tunnel', '?')}, {lease.get('calls', '0')} calls"
            f", last {lease.get('last-call') or 'never'}"
        )
        since = datetime.fromisoformat(row["since"])
        click.echo(
            f"{row['subject']}  held by {row['holder']}  since {row['since']} "
            f"({int((now - since).total_seconds())}s)"
        )
        click.echo(f"  webhooks: {', '.join(row['webhooks'])}")
        tunnel = row["tunnel"]
        click.echo(
            f"  tunnel: {tunnel.get('master')}:{tunnel.get('port')} via "
            f"{tunnel.get('destination')}  ({state})"
        )
        if row["recording"]:
            click.echo(f"  recording: {row['recording']}")
