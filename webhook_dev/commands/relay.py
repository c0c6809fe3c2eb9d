"""``up --relay`` and ``doctor --relay``: where the relay runs, and whether we may run it."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from webhook_dev.commands.options import say
from webhook_dev.errors import ClusterError, PreflightError
from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect import interception, probe_objects
from webhook_dev.redirect import plan_builder as redirect
from webhook_dev.redirect.discovery import discover, subject_of
from webhook_dev.redirect.selection import Selection
from webhook_dev.tunnel import relay_manifests
from webhook_dev.tunnel.relay import RelayTransport, new_relay_id
from webhook_dev.tunnel.relay_manifests import Permission, RelaySpec
from webhook_dev.tunnel.transport import TransportState

Json = dict[str, Any]
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def relay_transport(
    context: str | None,
    kubeconfig: str | None,
    selection: Selection,
    *,
    image: str | None,
    port: int,
    host_network: bool,
    on_state: Callable[[TransportState, str], None] | None = None,
) -> RelayTransport:
    """Read where the webhook's Service lives, check every RBAC verb ``up --relay`` needs
    (SelfSubjectAccessReview; nothing changes), and say what will run.

    :raises PreflightError: a flag that cannot work, what to redirect is not found, or a
        verb is not allowed (all missing ones named).
    """
    if not 1 <= port <= 65535:
        raise PreflightError(f"--relay-port {port} is not a TCP port", hint="e.g. 443 or 8443")
    cluster = Cluster.connect(context, kubeconfig)
    snapshot = discover(cluster, selection)
    subject = subject_of(snapshot)
    target = redirect.service_target(snapshot)
    namespace = target.namespace if target else "default"
    missing = missing_permissions(cluster, namespace)
    if missing:  # before the relay is created: nothing changes half-way
        error = describe_missing(missing, namespace)
        raise PreflightError(error.message, hint=error.hint)
    spec = RelaySpec(
        namespace=namespace,
        relay_id=new_relay_id(),
        image=image or relay_manifests.DEFAULT_IMAGE,
        port=port,
        host_network=host_network,
        subject=subject.base,
    )
    network = "the node's network" if host_network else "its own Pod IP"
    root = " (as root, NET_BIND_SERVICE only)" if spec.runs_as_root else ""
    say(
        f"relay: Pod {spec.namespace}/{spec.name} from {spec.image}, listening on port "
        f"{spec.port} on {network}{root}"
    )
    return RelayTransport(cluster, spec, on_state=on_state)


def unreachable_hint(transport: RelayTransport) -> str:
    """What to check when the apiserver's calls never reached the relay."""
    spec = transport.spec
    return (
        f"the apiserver could not reach the relay at {transport.pod_ip}:{spec.port}: if the "
        "control plane cannot reach Pod IPs (EKS with an overlay CNI such as Calico), pass "
        "--relay-host-network; if a firewall lets it reach nodes only on some ports (GKE "
        "private clusters: 443 and 10250), keep --relay-port 443"
    )


def missing_permissions(cluster: Cluster, namespace: str) -> list[tuple[Permission, str]]:
    """Each permission ``up --relay`` needs that the caller lacks, with the reason given.

    :raises ClusterError: the access reviews themselves cannot be made.
    """

    def ask(permission: Permission) -> tuple[Permission, Json]:
        review = relay_manifests.access_review(permission, namespace)
        return permission, cluster.create(ACCESS_REVIEWS, review).get("status") or {}

    # In parallel: on a managed cluster each review is a round trip of tens of ms.
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, relay_manifests.RELAY_PERMISSIONS))
    return [
        (permission, str(status.get("reason") or ""))
        for permission, status in answers
        if not status.get("allowed")
    ]


def describe_missing(missing: list[tuple[Permission, str]], namespace: str) -> ClusterError:
    """One error naming every missing verb, for ``doctor``'s ✗ line."""
    listed = "; ".join(
        f"{permission}{'' if not permission.namespaced else f' in {namespace}'} ({permission.why})"
        for permission, _ in missing
    )
    return ClusterError(
        f"your user may not: {listed}",
        hint="ask for a Role with these verbs (docs/relay.md lists them)",
    )


VALIDATING_POLICIES = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies"


def admission_in_the_way(
    cluster: Cluster, snapshot: redirect.Snapshot, namespace: str
) -> list[str]:
    """What admission control other than the redirected entries would see the relay's
    ConfigMap and Pod in ``namespace``, one line each (naming it); nothing changes.

    The redirected entries are left out: ``up`` shields the relay from them. Other
    webhook entries are matched as the apiserver matches them (rules and both selectors),
    and ValidatingAdmissionPolicies by their ``matchConstraints``; whether their CEL
    denies is for the apiserver to say, so they are named as "may".
    """
    spec = RelaySpec(namespace=namespace, relay_id="doctor")
    labels = relay_manifests.labels(spec)
    created = [
        interception.Created("configmaps", namespace, labels),
        interception.Created("pods", namespace, labels),
    ]
    configs: dict[tuple[str, str], Json] = {}
    for kind, collection in redirect.CONFIG_COLLECTIONS.items():
        for config in cluster.list(collection):
            configs[(kind, config["metadata"]["name"])] = config
    found = cluster.get_or_none(f"/api/v1/namespaces/{namespace}") or {}
    namespace_labels = (found.get("metadata") or {}).get("labels") or {}
    lines = [
        interceptor.describe()
        for interceptor in interception.interceptors(
            configs, created, namespace_labels, skip=snapshot.entries
        )
    ]
    try:
        policies = cluster.list(VALIDATING_POLICIES)
    except ClusterError:  # before Kubernetes 1.30, or not allowed to list them
        policies = []
    for policy in policies:
        constraints = (policy.get("spec") or {}).get("matchConstraints") or {}
        entry = {"rules": constraints.get("resourceRules") or []}
        for item in created:
            if (
                interception.rules_match(entry, item)
                and probe_objects.selector_matches(
                    constraints.get("namespaceSelector"), namespace_labels
                )
                and probe_objects.selector_matches(constraints.get("objectSelector"), item.labels)
            ):
                lines.append(
                    f"ValidatingAdmissionPolicy {policy['metadata']['name']} applies to "
                    f"{item.resource} in {namespace}: may deny it (where a binding applies it)"
                )
    return lines
