"""What a personal redirect reads and checks in the cluster before it changes anything.

* who runs ``up`` (a ``SelfSubjectReview``: the Kubernetes user names the copy and the
  holder; the local account is only the fallback);
* that the apiserver evaluates ``matchConditions`` when the scope names requesters (GA in
  1.30: ``/version``);
* that no other session holds an overlapping scope of the same webhook entries, and no
  session redirects them whole (:func:`check_scope_free`), naming the holder.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable
from dataclasses import dataclass

from webhook_dev.errors import ClusterError, HeldError, PreflightError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect import journal
from webhook_dev.redirect.personal_plan import Personal, ordering_warnings
from webhook_dev.redirect.plan_builder import CONFIG_COLLECTIONS, MUTATING, EntryRef, Snapshot
from webhook_dev.redirect.scope import Scope, owner_label, version_allows_match_conditions

SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


def whoami(cluster: Cluster) -> str:
    """The Kubernetes user name of this kubeconfig (the local account if the API cannot say)."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    try:
        answer = cluster.create(SELF_SUBJECT_REVIEWS, review)
    except ClusterError:
        return getpass.getuser()
    username = ((answer.get("status") or {}).get("userInfo") or {}).get("username")
    return str(username) if username else getpass.getuser()


def check_match_conditions(cluster: Cluster, scope: Scope) -> None:
    """A requester scope is CEL ``matchConditions``: refuse it on an apiserver before 1.30."""
    if not scope.has_requesters:
        return
    version = cluster.get("/version")
    major, minor = str(version.get("major", "")), str(version.get("minor", ""))
    if not version_allows_match_conditions(major, minor):
        found = version.get("gitVersion") or f"{major}.{minor}"
        raise PreflightError(
            "--only-user/--only-group need CEL matchConditions on request.userInfo, GA in "
            f"Kubernetes 1.30; this apiserver is {found}",
            hint="scope by namespace instead (--only-namespace), or upgrade the cluster",
        )


def check_scope(cluster: Cluster, scope: Scope) -> None:
    """A scope the cluster can apply: its namespaces exist, and a requester scope's
    ``matchConditions`` are evaluated (personal redirects and shadows alike)."""
    check_match_conditions(cluster, scope)
    for namespace in scope.namespaces:
        if cluster.get_or_none(f"/api/v1/namespaces/{namespace}") is None:
            raise PreflightError(
                f"--only-namespace {namespace}: no such namespace",
                hint="create it first, or check the name (kubectl get namespaces)",
            )


def check_scope_free(
    cluster: Cluster,
    entries: Iterable[EntryRef],
    scope: Scope | None,
    *,
    own_record: str | None = None,
    only_records: set[str] | None = None,
) -> None:
    """Refuse if another session's claim meets ours; ``scope=None`` is a whole redirect.

    Two personal redirects meet when they share an entry and their scopes overlap; a whole
    redirect meets every claim on its entries. Returns the claims it stepped past (stale
    records of ourselves are the caller's business through ``own_record``).
    """
    wanted = {str(ref) for ref in entries}
    for holding in journal.holdings(cluster):
        if holding.record_name == own_record or not (holding.entries & wanted):
            continue
        if only_records is not None and holding.record_name not in only_records:
            continue
        theirs = Scope.from_json(holding.scope) if holding.scope is not None else None
        if scope is not None and theirs is not None and not scope.overlaps(theirs):
            continue
        shared = ", ".join(sorted(holding.entries & wanted))
        what = f"a personal redirect of {theirs.describe()}" if theirs else "a whole redirect"
        raise HeldError(
            f"{shared} is held by {holding.holder}: {what} (record "
            f"ValidatingWebhookConfiguration {holding.record_name}); "
            + ("your scope overlaps it" if scope is not None and theirs else "it would overlap"),
            hint="choose a disjoint scope (--only-namespace/--only-user), or ask them to stop; "
            "`webhook-dev status` lists every redirect",
        )


def check_copies_free(cluster: Cluster, copy_paths: Iterable[str]) -> None:
    """A copy's name is the owner's and the configuration's: one personal redirect of a
    configuration per Kubernetes user at a time."""
    for path in copy_paths:
        if cluster.get_or_none(path) is not None:
            name = path.rsplit("/", 1)[1]
            raise HeldError(
                f"{name} already exists: you hold another personal redirect of this "
                "configuration (or one did not finish)",
                hint="stop it, or restore it with `webhook-dev down`; see `webhook-dev status`",
            )


@dataclass(frozen=True)
class Claim:
    """What a personal ``up`` learned in its preflight: whose, which names, what to say."""

    personal: Personal
    subject: journal.Subject
    owner: str  # the Kubernetes user
    warnings: list[str]


def prepare_claim(
    cluster: Cluster, snapshot: Snapshot, base: journal.Subject, scope: Scope, force: bool
) -> Claim:
    """Check a personal redirect can be taken, and name it; changes nothing."""
    check_scope(cluster, scope)
    owner = whoami(cluster)
    personal = Personal(scope, owner_label(owner), scope.token(base.base))
    subject = journal.Subject(base.namespace, base.name, f"{personal.owner}.{personal.token}")
    check_scope_free(cluster, snapshot.entries, scope, own_record=subject.object_name)
    if not force:
        copies = [personal.copy_name(name) for _, name in snapshot.configs]
        kinds = [kind for kind, _ in snapshot.configs]
        check_copies_free(
            cluster, (f"{CONFIG_COLLECTIONS[k]}/{c}" for k, c in zip(kinds, copies, strict=True))
        )
    mutating = {
        (MUTATING, item["metadata"]["name"]): item
        for item in cluster.list(CONFIG_COLLECTIONS[MUTATING])
    }
    return Claim(personal, subject, owner, ordering_warnings(mutating, snapshot, personal))


def recheck_after_lock(cluster: Cluster, claim: Claim, entries: Iterable[EntryRef]) -> None:
    """Two ``up`` may pass the preflight at once: after taking our record, look again.

    The earlier record wins (creation time, then name): if an overlapping claim made before
    ours appeared, we give ours back (nothing was changed yet) and refuse; a later one will
    see ours and give its own back.
    """
    found = journal.holdings(cluster)
    ours = next((h for h in found if h.record_name == claim.subject.object_name), None)
    if ours is None:
        return
    earlier = [
        h.record_name
        for h in found
        if (h.created, h.record_name) < (ours.created, ours.record_name)
    ]
    if not earlier:
        return
    try:
        check_scope_free(
            cluster,
            entries,
            claim.personal.scope,
            own_record=claim.subject.object_name,
            only_records=set(earlier),
        )
    except HeldError:
        journal.release_lease(cluster, claim.subject)
        raise
