"""Carry a :class:`~webhook_dev.redirect.plan.RedirectPlan` out against the cluster, and back.

The order is chosen so the cluster is safe at every step, not just at the end:

``up``:   webhook entries first (our CA appended, ``failurePolicy: Ignore``) and CRD
          conversions (our CA appended) — harmless while the in-cluster webhook still
          serves; then the Service loses its selector (so the endpoint controllers stop
          maintaining its Endpoints and slices); then Endpoints, the controller's slices
          emptied, and our slice created.
``down``: Endpoints and the controller's slices refilled *before* the selector returns (so
          the controllers' next reconcile wins), then the selector, our slice deleted, and
          the webhook entries and conversions last, so ``Ignore`` and our CA stay until
          calls go to the in-cluster Pods again.

A personal redirect (:mod:`webhook_dev.redirect.personal_plan`) creates its copies first and
narrows the originals after, and ``down`` widens the originals before deleting the copies:
in between, an in-scope call goes to both the copy and the original, never to neither, so
no call skips the team's webhook.

``--relay``'s *shield* (an ``objectSelector`` expression keeping the relay's objects out
of the redirected entries, :mod:`webhook_dev.redirect.interception`) is applied before the
relay exists and restored after it is gone, so no entry ever meets the relay: not its
create, not its delete.

Both report each step through ``on_step`` so ``up`` can be killed at any point in tests
(``WEBHOOK_DEV_FAULT_AFTER``) and the live view can show progress.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field

from webhook_dev.errors import ClusterError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect.conversions import CRD_KIND
from webhook_dev.redirect.personal_plan import COPY_OF_LABEL
from webhook_dev.redirect.plan import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    ChangeKind,
    FieldChange,
    FieldResult,
    Json,
    ObjectCreate,
    ObjectRef,
    Outcome,
    RedirectPlan,
    apply_changes,
    canonical,
    get_field,
    restore_changes,
)
from webhook_dev.redirect.plan_builder import MUTATING, VALIDATING
from webhook_dev.tls import certs
from webhook_dev.tunnel.relay_manifests import RELAY_LABEL

# (kind, created by us?) in the order each direction touches them.
_UP_ORDER = [
    ("ConfigMap", True),  # --relay's program and Pod: made by the transport already
    ("Pod", True),
    (MUTATING, True),  # a personal redirect's copies
    (VALIDATING, True),
    (MUTATING, False),
    (VALIDATING, False),
    (CRD_KIND, False),  # a conversion's caBundle, like an entry's
    ("Service", False),
    ("Endpoints", False),
    ("Endpoints", True),
    ("EndpointSlice", False),
    ("EndpointSlice", True),
]
_DOWN_ORDER = [
    ("Endpoints", False),
    ("Endpoints", True),
    ("EndpointSlice", False),
    ("Service", False),
    ("EndpointSlice", True),
    (MUTATING, False),
    (VALIDATING, False),
    (CRD_KIND, False),
    (MUTATING, True),
    (VALIDATING, True),
    ("Pod", True),  # the relay last: it carries calls until nothing points at it
    ("ConfigMap", True),
]

StepCallback = Callable[[str], None]


@dataclass
class RestoreReport:
    """What ``down`` did to each object, in words a person can check."""

    restored: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.conflicts

    def add_fields(self, results: list[FieldResult]) -> None:
        for result in results:
            text = result.change.describe()
            if result.outcome is Outcome.RESTORED:
                self.restored.append(text)
            elif result.outcome is Outcome.ALREADY:
                self.already.append(text)
            else:
                self.conflicts.append(
                    f"{text}: changed by someone else during the session (now "
                    f"{canonical(result.current)[:80]}); left as it is"
                )


def step_name(ref: ObjectRef) -> str:
    return f"{ref.kind}/{ref.name}"


def _ordered(plan: RedirectPlan, order: list[tuple[str, bool]]) -> list[ObjectRef]:
    created = {create.ref for create in plan.creates}
    return sorted(plan.refs(), key=lambda ref: order.index((ref.kind, ref in created)))


def apply_plan(cluster: Cluster, plan: RedirectPlan, on_step: StepCallback) -> None:
    """Make every planned change; each object is written once, with conflict retries."""
    creates = {create.ref: create for create in plan.creates}
    for ref in _ordered(plan, _UP_ORDER):
        if ref in creates:
            _create_or_take(cluster, creates[ref])
        else:
            stored = cluster.update(ref.url, applier(plan.changes_for(ref)))
            if stored is None:
                raise ClusterError(f"{ref} disappeared while redirecting it")
        on_step(step_name(ref))


def applier(changes: list[FieldChange]) -> Callable[[Json], Json]:
    return lambda current: apply_changes(current, changes)


def reappend_ca(cluster: Cluster, plan: RedirectPlan) -> list[ObjectRef]:
    """Append our CA again to every bundle of ``plan`` that no longer holds it; the objects
    written. A CA injector's rewrite keeps its own CA and gets ours on top; ``down`` then
    removes only ours (:func:`~webhook_dev.redirect.plan.restore_changes`)."""
    bundles = [c for c in plan.changes if c.kind is ChangeKind.BUNDLE_APPEND]
    rewritten = []
    for ref in dict.fromkeys(c.ref for c in bundles):
        current = cluster.get_or_none(ref.url)
        if current is None:
            continue
        missing = [
            c
            for c in bundles
            if c.ref == ref
            and not (
                isinstance(value := get_field(current, c.path), str)
                and certs.bundle_contains(_b64(value), _b64(c.after))
            )
        ]
        if missing:
            cluster.update(ref.url, applier(missing))
            rewritten.append(ref)
    return rewritten


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value)
    except ValueError:
        return b""


def restore_plan(cluster: Cluster, plan: RedirectPlan, on_step: StepCallback) -> RestoreReport:
    """Undo ``plan`` from the journal alone; safe to run any number of times."""
    report = RestoreReport()
    creates = {create.ref: create for create in plan.creates}
    shields = [change for change in plan.changes if is_shield(change)]
    rest = RedirectPlan([change for change in plan.changes if not is_shield(change)], plan.creates)
    for ref in _ordered(rest, _DOWN_ORDER):
        if ref in creates:
            _remove_created(cluster, creates[ref], report)
        else:
            _restore_fields(cluster, ref, rest, report)
        on_step(step_name(ref))
    shielded = RedirectPlan(shields)
    for ref in shielded.refs():
        _restore_fields(cluster, ref, shielded, report)
        on_step(f"{step_name(ref)} (shield)")
    return report


def is_shield(change: FieldChange) -> bool:
    """The relay's exclusion from an entry (``objectSelector``: ``<relay label>
    DoesNotExist``): restored only once the relay is gone."""
    after = change.after
    return (
        change.kind is ChangeKind.LIST_ADD
        and change.path[-2:] == ("objectSelector", "matchExpressions")
        and isinstance(after, dict)
        and after.get("key") == RELAY_LABEL
        and after.get("operator") == "DoesNotExist"
    )


def _restore_fields(
    cluster: Cluster, ref: ObjectRef, plan: RedirectPlan, report: RestoreReport
) -> None:
    changes = plan.changes_for(ref)
    results: list[FieldResult] = []

    def restored(current: Json) -> Json:
        nonlocal results
        obj, results = restore_changes(current, changes)
        return obj

    if cluster.update(ref.url, restored) is None:
        report.conflicts.append(f"{ref}: deleted by someone else during the session")
        return
    report.add_fields(results)


def _create_or_take(cluster: Cluster, create: ObjectCreate) -> None:
    """Create, or (after a crash mid-``up``) bring our earlier copy up to date."""
    existing = cluster.get_or_none(create.ref.url)
    if create.adopt:
        if existing is None:  # a new relay would have another IP than the plan's
            raise ClusterError(f"{create.ref} disappeared before the redirect")
        return
    if existing is None:
        cluster.create(create.ref.api_path, create.manifest)
        return
    manifest = dict(create.manifest)
    manifest["metadata"] = dict(
        manifest["metadata"], resourceVersion=existing["metadata"]["resourceVersion"]
    )
    cluster.replace(create.ref.url, manifest)


def _remove_created(cluster: Cluster, create: ObjectCreate, report: RestoreReport) -> None:
    current = cluster.get_or_none(create.ref.url)
    if current is None:
        report.already.append(f"{create.ref} (ours) is gone")
        return
    labels = current["metadata"].get("labels") or {}
    # Our slices by their manager label; a personal copy by the label it was created with.
    copy_of = _labels_of(create).get(COPY_OF_LABEL)
    relay = _labels_of(create).get(RELAY_LABEL)
    ours_by_label = (
        labels.get(MANAGED_BY_LABEL) == MANAGED_BY
        or (copy_of is not None and labels.get(COPY_OF_LABEL) == copy_of)
        or (create.adopt and relay is not None and labels.get(RELAY_LABEL) == relay)
    )
    same_content = _content(current) == _content(create.manifest)
    if ours_by_label or same_content:
        # The relay's Pod goes at once, while the shield still keeps it from the webhooks
        # (the kubelet's final delete of a Terminating Pod would come after the shield).
        cluster.delete(create.ref.url, grace_period=0 if relay is not None else None)
        report.restored.append(f"{create.ref} (ours) deleted")
    else:
        report.conflicts.append(f"{create.ref}: changed by someone else; left in place")


def _labels_of(create: ObjectCreate) -> dict[str, str]:
    return dict(create.manifest.get("metadata", {}).get("labels") or {})


def _content(manifest: Json) -> str:
    """Compare what an object says, not its bookkeeping (resourceVersion, uid, timestamps)."""
    body = {key: value for key, value in manifest.items() if key not in ("metadata", "status")}
    metadata = manifest.get("metadata") or {}
    body["labels"] = metadata.get("labels") or {}
    return canonical(body)
