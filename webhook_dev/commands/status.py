"""``webhook-dev status``: who holds which redirect, since when, tunnel health and calls.

Every redirect of the cluster, whole or personal: a personal one also shows its scope and
the copies it made, so a team on a shared cluster sees who takes which calls.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from webhook_dev.commands.options import cluster_options
from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect import journal
from webhook_dev.redirect import plan_builder as redirect
from webhook_dev.redirect.restore import find_journals
from webhook_dev.redirect.scope import Scope


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
                "personal": None
                if record.scope is None
                else {
                    "owner": record.owner,
                    "scope": Scope.from_json(record.scope).describe(),
                    "copies": sorted(
                        c.ref.name
                        for c in record.plan.creates
                        if c.ref.kind in redirect.CONFIG_COLLECTIONS
                    ),
                },
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
        if row["personal"]:
            personal = row["personal"]
            click.echo(
                f"  personal: {personal['scope']} → copies {', '.join(personal['copies'])} "
                "(everyone else's calls go to the in-cluster webhook)"
            )
        tunnel = row["tunnel"]
        if tunnel.get("kind") == "direct":
            refused = (lease or {}).get("refused", "?")
            click.echo(
                f"  direct: {tunnel.get('master')}:{tunnel.get('port')}, only from "
                f"{tunnel.get('allowed')}; {refused} connections refused  ({state})"
            )
        elif tunnel.get("kind") == "relay":
            click.echo(
                f"  relay: Pod {tunnel.get('pod')} at {tunnel.get('master')}:"
                f"{tunnel.get('port')} ({tunnel.get('image')}), "
                f"{(lease or {}).get('relay-reconnects', '0')} port-forward reconnects  ({state})"
            )
        else:
            click.echo(
                f"  tunnel: {tunnel.get('master')}:{tunnel.get('port')} via "
                f"{tunnel.get('destination')}  ({state})"
            )
        if row["recording"]:
            click.echo(f"  recording: {row['recording']}")
