"""What ``up`` and ``doctor`` read and check before anything in the cluster changes."""

from __future__ import annotations

from webhook_dev.errors import HeldError, PreflightError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect import journal
from webhook_dev.redirect import plan_builder as redirect
from webhook_dev.redirect import probe_objects as probe
from webhook_dev.redirect.plan import SERVICE_NAME_LABEL, Json
from webhook_dev.redirect.plan_builder import Snapshot

CA_INJECTOR_ANNOTATIONS = (
    "cert-manager.io/inject-ca-from",
    "cert-manager.io/inject-ca-from-secret",
)


def discover(cluster: Cluster, webhook: str | None, service: str | None) -> Snapshot:
    """The webhook entries to redirect and the objects they involve, as they are now."""
    configs: dict[tuple[str, str], Json] = {}
    for kind, collection in redirect.CONFIG_COLLECTIONS.items():
        for item in cluster.list(collection):
            configs[(kind, item["metadata"]["name"])] = item
    if webhook:
        name, _, entry = webhook.partition("/")
        entries = redirect.entries_named(configs, name, entry or None)
    elif service:
        namespace, _, name = service.partition("/")
        if not namespace or not name:
            raise PreflightError(f"--service wants NAMESPACE/NAME, not {service!r}")
        entries = redirect.entries_for_service(configs, namespace, name)
        if not entries:
            raise PreflightError(
                f"no Mutating- or ValidatingWebhookConfiguration calls Service {service}",
                hint="check the Service name, or name the configuration with --webhook",
            )
    else:
        raise PreflightError("say what to redirect: --webhook NAME[/ENTRY] or --service NS/NAME")
    used = {(ref.config_kind, ref.config_name) for ref in entries}
    snapshot = Snapshot(configs={key: configs[key] for key in used}, entries=entries)
    target = redirect.service_target(snapshot)
    if target is not None:
        core = f"/api/v1/namespaces/{target.namespace}"
        snapshot.service = cluster.get_or_none(f"{core}/services/{target.name}")
        snapshot.endpoints = cluster.get_or_none(f"{core}/endpoints/{target.name}")
        snapshot.endpoint_slices = cluster.list(
            redirect.slices_path(target.namespace),
            label_selector=f"{SERVICE_NAME_LABEL}={target.name}",
        )
    return snapshot


def subject_of(snapshot: Snapshot) -> journal.Subject:
    target = redirect.service_target(snapshot)
    if target is not None:
        return journal.Subject(target.namespace, target.name)
    return journal.Subject("default", snapshot.entries[0].config_name)


def preflight_warnings(snapshot: Snapshot) -> list[str]:
    """Things that are allowed but deserve a word before the cluster depends on a laptop."""
    warnings = []
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
    return warnings


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
