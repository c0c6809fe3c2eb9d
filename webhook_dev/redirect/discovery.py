"""What ``up`` and ``doctor`` read and check before anything in the cluster changes."""

from __future__ import annotations

from webhook_dev.errors import ClusterError, HeldError, PreflightError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect import conversions, journal
from webhook_dev.redirect import plan_builder as redirect
from webhook_dev.redirect import probe_objects as probe
from webhook_dev.redirect.plan import SERVICE_NAME_LABEL, Json
from webhook_dev.redirect.plan_builder import Snapshot
from webhook_dev.redirect.selection import Selection

CA_INJECTOR_ANNOTATIONS = (
    "cert-manager.io/inject-ca-from",
    "cert-manager.io/inject-ca-from-secret",
)


def discover(cluster: Cluster, selection: Selection, *, whole_service: bool = True) -> Snapshot:
    """The callers to redirect and the objects they involve, as they are now.

    ``whole_service``: the Service itself is redirected, so every caller of it is — the
    webhook entries and CRD conversions that call it, chosen by name or not (protocol 8:
    a caller left out would reach this machine without trusting its CA). A personal
    redirect (``False``) copies only the chosen entries and leaves conversions in the
    cluster, listed in ``kept_conversions``.
    """
    configs: dict[tuple[str, str], Json] = {}
    for kind, collection in redirect.CONFIG_COLLECTIONS.items():
        for item in cluster.list(collection):
            configs[(kind, item["metadata"]["name"])] = item
    crds, unlisted = _crds(cluster, selection)
    entries = _chosen_entries(configs, crds, selection)
    if selection.crds and not whole_service:
        raise PreflightError(
            "a conversion cannot be scoped to a person: --crd needs a redirect of the "
            "whole Service",
            hint="drop --only-namespace/--only-user/--only-group, or drop --crd",
        )
    chosen = {name: conversions.check_crd(crds, name) for name in selection.crds}
    snapshot = Snapshot(configs={}, entries=entries, crds=chosen)
    if unlisted:
        snapshot.caller_warnings.append(unlisted)
    _with_configs(snapshot, configs)
    target = redirect.service_target(snapshot)
    if target is not None:
        calling = conversions.crds_for_service(crds, target.namespace, target.name)
        if whole_service:
            for ref in redirect.entries_for_service(configs, target.namespace, target.name):
                if ref not in snapshot.entries:
                    snapshot.entries.append(ref)
            snapshot.crds.update({name: crds[name] for name in calling})
            snapshot.crds = dict(sorted(snapshot.crds.items()))
            _with_configs(snapshot, configs)
        else:
            snapshot.kept_conversions = calling
        core = f"/api/v1/namespaces/{target.namespace}"
        snapshot.service = cluster.get_or_none(f"{core}/services/{target.name}")
        snapshot.endpoints = cluster.get_or_none(f"{core}/endpoints/{target.name}")
        snapshot.endpoint_slices = cluster.list(
            redirect.slices_path(target.namespace),
            label_selector=f"{SERVICE_NAME_LABEL}={target.name}",
        )
    return snapshot


def _crds(cluster: Cluster, selection: Selection) -> tuple[dict[str, Json], str]:
    """Every CRD by name; or none and why, when we may not list them (a user with rights
    on one namespace's Services and webhooks only): that is not a reason to refuse a
    redirect whose Service no CRD calls, but it deserves a warning."""
    try:
        items = cluster.list(conversions.CRD_COLLECTION)
    except ClusterError as error:
        if selection.crds:
            raise
        return {}, (
            f"cannot list CustomResourceDefinitions ({error.message}): a CRD whose conversion "
            "webhook calls the Service would reach this machine without trusting its CA; "
            "name it with --crd, or ask for list on customresourcedefinitions"
        )
    return {item["metadata"]["name"]: item for item in items}, ""


def _chosen_entries(
    configs: dict[tuple[str, str], Json], crds: dict[str, Json], selection: Selection
) -> list[redirect.EntryRef]:
    if selection.webhook:
        name, _, entry = selection.webhook.partition("/")
        return redirect.entries_named(configs, name, entry or None)
    if selection.service:
        namespace, _, name = selection.service.partition("/")
        entries = redirect.entries_for_service(configs, namespace, name)
        if not entries and not conversions.crds_for_service(crds, namespace, name):
            raise PreflightError(
                "no Mutating- or ValidatingWebhookConfiguration and no "
                f"CustomResourceDefinition's conversion calls Service {selection.service}",
                hint="check the Service name, or name the caller with --webhook or --crd",
            )
        return entries
    return []


def _with_configs(snapshot: Snapshot, configs: dict[tuple[str, str], Json]) -> None:
    used = {(ref.config_kind, ref.config_name) for ref in snapshot.entries}
    snapshot.configs = {key: configs[key] for key in sorted(used)}


def subject_of(snapshot: Snapshot) -> journal.Subject:
    target = redirect.service_target(snapshot)
    if target is not None:
        return journal.Subject(target.namespace, target.name)
    if snapshot.entries:
        return journal.Subject("default", snapshot.entries[0].config_name)
    return journal.Subject("default", next(iter(snapshot.crds)))


def preflight_warnings(snapshot: Snapshot) -> list[str]:
    """Things that are allowed but deserve a word before the cluster depends on a laptop."""
    warnings = list(snapshot.caller_warnings)
    for ref in snapshot.entries:
        entry = redirect.entry_of(snapshot, ref)
        if not probe.excludes_system_namespaces(entry):
            warnings.append(
                f"webhook {ref} has no namespaceSelector keeping it off kube-system: while "
                "your code is broken or the laptop sleeps it is also called for control-plane "
                "Pods (add a NotIn kube-system expression on kubernetes.io/metadata.name)"
            )
    for (kind, name), config in snapshot.configs.items():
        annotations = config["metadata"].get("annotations") or {}
        for key in CA_INJECTOR_ANNOTATIONS:
            if key in annotations:
                warnings.append(
                    f"{kind} {name} has its caBundle injected by cert-manager ({key}); if it "
                    "rewrites the bundle during the session, webhook-dev appends its CA again"
                )
    for name, crd in snapshot.crds.items():
        annotations = crd["metadata"].get("annotations") or {}
        for key in CA_INJECTOR_ANNOTATIONS:
            if key in annotations:
                warnings.append(
                    f"CustomResourceDefinition {name} has its caBundle injected by cert-manager "
                    f"({key}); if it rewrites the bundle during the session, webhook-dev "
                    "appends its CA again"
                )
    if snapshot.crds:
        warnings.append(conversion_warning(list(snapshot.crds)))
    return warnings


def conversion_warning(names: list[str]) -> str:
    """Laptop away, for conversions: nothing softens it, so say it plainly and say the way out."""
    return (
        f"the conversion webhook of {', '.join(names)} has no failurePolicy and no timeout: "
        "while this machine sleeps or the tunnel is down (or your code cannot answer and no "
        "in-cluster Pod of the Service answers for it), reading, watching or writing those "
        "objects in a version other than the stored one fails (and so does garbage "
        "collection or namespace deletion of them); `webhook-dev down` from any shell ends it"
    )


def check_not_held(
    cluster: Cluster, subject: journal.Subject, force: bool
) -> journal.Journal | None:
    """Refuse if another session holds ``subject``; return a stale journal to clean up."""
    lease = journal.read_lease(cluster, subject)
    leftover = journal.read_cluster(cluster, subject)
    if lease is not None and not lease.is_stale():
        raise HeldError(
            f"{subject} is already redirected by {lease.holder} "
            f"(lease renewed {lease.renewed:%H:%M:%S} UTC)",
            hint="stop that session, or take it down from here: "
            f"webhook-dev down --service {subject}",
        )
    if (lease is not None or leftover is not None) and not force:
        holder = lease.holder if lease else (leftover.holder if leftover else "?")
        raise HeldError(
            f"{subject} was redirected by a session of {holder} that did not finish",
            hint=f"restore it with `webhook-dev down --service {subject}`, or pass --force "
            "to restore and take over in one go",
        )
    return leftover
