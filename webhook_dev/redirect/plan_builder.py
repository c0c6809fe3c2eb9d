"""Which webhook entries to redirect and the exact field changes that do it. Pure.

Given what the cluster holds now (a :class:`Snapshot`) and where the tunnel ends on the
master (a :class:`Target`), :func:`build_plan` returns the
:class:`~webhook_dev.redirect.plan.RedirectPlan`
that ``up`` journals and applies:

* the Service loses its selector, so no controller rewrites the Endpoints we set;
* the Endpoints point at ``<master-address>:<tunnel-port>`` under the Service port's *name*
  (kube-apiserver's endpoint resolver matches endpoints to the Service port by name), and are
  labelled ``skip-mirror`` so the EndpointSlice mirroring controller does not publish a second
  copy of them next to ours;
* our own EndpointSlice carries the same endpoint for kube-proxy and slice-based resolvers;
* EndpointSlices the EndpointSlice controller made for the selector are emptied: without a
  selector the controller stops maintaining them but does not delete them, and kube-proxy
  would keep balancing between the in-cluster Pods and the tunnel (seen on the lab, see
  docs/lab.md). ``down`` refills them before the selector returns;
* each redirected webhook entry gets our CA appended to ``caBundle`` and, unless the user opts
  out, ``failurePolicy: Ignore`` and a short timeout so a sleeping laptop cannot block the
  cluster; ``url:`` entries get the tunnel's URL instead;
* each redirected CRD conversion (:mod:`webhook_dev.redirect.conversions`) gets our CA
  appended to ``spec.conversion.webhook.clientConfig.caBundle`` the same way (a ``url:`` one
  the tunnel's URL); it has no failure policy or timeout to relax.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from webhook_dev.addresses import is_ip_address, usable_endpoint_ip
from webhook_dev.errors import PreflightError
from webhook_dev.redirect import conversions
from webhook_dev.redirect.plan import (
    ABSENT,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    SKIP_MIRROR_LABEL,
    ChangeKind,
    FieldChange,
    Json,
    ObjectCreate,
    ObjectRef,
    PathStep,
    RedirectPlan,
    get_field,
)

MUTATING = "MutatingWebhookConfiguration"
VALIDATING = "ValidatingWebhookConfiguration"
WEBHOOK_API = "/apis/admissionregistration.k8s.io/v1"
CONFIG_COLLECTIONS = {
    MUTATING: f"{WEBHOOK_API}/mutatingwebhookconfigurations",
    VALIDATING: f"{WEBHOOK_API}/validatingwebhookconfigurations",
}


@dataclass(frozen=True)
class EntryRef:
    """One webhook entry: its configuration's kind and name, and the entry's own name."""

    config_kind: str
    config_name: str
    entry_name: str

    def __str__(self) -> str:
        return f"{self.config_name}/{self.entry_name}"


@dataclass(frozen=True)
class ServiceTarget:
    """The in-cluster Service a ``service:`` entry calls, and the port it dials."""

    namespace: str
    name: str
    port: int  # the Service port (webhook clientConfig.service.port, default 443)


@dataclass
class Snapshot:
    """What the cluster holds now, as raw manifests (exact: nothing dropped by a model)."""

    configs: dict[tuple[str, str], Json]  # (kind, name) -> configuration
    entries: list[EntryRef]
    service: Json | None = None
    endpoints: Json | None = None
    endpoint_slices: list[Json] = field(default_factory=list)  # the Service's, any manager
    # CRDs whose conversion webhook is redirected, by name, as they are now.
    crds: dict[str, Json] = field(default_factory=dict)
    # CRDs whose conversion calls the Service but stays in the cluster (a personal redirect).
    kept_conversions: list[str] = field(default_factory=list)
    # Why some callers could not be known (no right to list CRDs): said before any change.
    caller_warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """Where the apiserver's calls must go during the session, and how to treat entries."""

    master_address: str
    tunnel_port: int
    ca_pem: bytes
    session_id: str
    relax_failure_policy: bool = True
    timeout_seconds: int = 5


CONTROLLER_MANAGER = "endpointslice-controller.k8s.io"


def slices_path(namespace: str) -> str:
    return f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"


# --- discovery ------------------------------------------------------------------------------


def entries_for_service(
    configs: dict[tuple[str, str], Json], namespace: str, name: str
) -> list[EntryRef]:
    """Every webhook entry, in any configuration, whose ``service:`` is ``namespace/name``."""
    found = []
    for (kind, config_name), config in sorted(configs.items()):
        for entry in config.get("webhooks") or []:
            service = (entry.get("clientConfig") or {}).get("service") or {}
            if service.get("namespace") == namespace and service.get("name") == name:
                found.append(EntryRef(kind, config_name, entry["name"]))
    return found


def entries_named(
    configs: dict[tuple[str, str], Json], config_name: str, entry_name: str | None
) -> list[EntryRef]:
    """The entries of configuration ``config_name`` (one entry if ``entry_name`` is given)."""
    matches = [key for key in configs if key[1] == config_name]
    if not matches:
        raise PreflightError(
            f"no Mutating- or ValidatingWebhookConfiguration named {config_name!r}",
            hint="list them with: kubectl get mutatingwebhookconfigurations,"
            "validatingwebhookconfigurations",
        )
    if len(matches) > 1:
        raise PreflightError(
            f"both a mutating and a validating configuration are named {config_name!r}",
            hint="name the entry's Service instead: --service NAMESPACE/NAME",
        )
    kind = matches[0][0]
    names = [entry["name"] for entry in configs[matches[0]].get("webhooks") or []]
    if entry_name is None:
        return [EntryRef(kind, config_name, entry) for entry in names]
    if entry_name not in names:
        raise PreflightError(
            f"{kind} {config_name} has no entry named {entry_name!r}",
            hint=f"its entries are: {', '.join(names) or '(none)'}",
        )
    return [EntryRef(kind, config_name, entry_name)]


def entry_of(snapshot: Snapshot, ref: EntryRef) -> Json:
    config = snapshot.configs[(ref.config_kind, ref.config_name)]
    for entry in config.get("webhooks") or []:
        if entry.get("name") == ref.entry_name:
            return dict(entry)
    raise KeyError(str(ref))


def service_target(snapshot: Snapshot) -> ServiceTarget | None:
    """The single Service the chosen ``service:`` entries and conversions call (``None`` if
    all use ``url:``).

    One session redirects one Service: callers of different Services would need different
    endpoints, so we refuse to mix them.
    """
    targets = set()
    for client_config in client_configs(snapshot):
        service = client_config.get("service")
        if service:
            targets.add(
                ServiceTarget(service["namespace"], service["name"], service.get("port", 443))
            )
    if len(targets) > 1:
        listed = ", ".join(sorted(f"{t.namespace}/{t.name}:{t.port}" for t in targets))
        raise PreflightError(
            f"the chosen webhook entries and conversions call different Services ({listed})",
            hint="redirect one Service per session: pass --webhook NAME/ENTRY, --service "
            "or --crd for callers of one Service",
        )
    return targets.pop() if targets else None


def client_configs(snapshot: Snapshot) -> list[Json]:
    """The clientConfig of every redirected caller: webhook entries, then conversions."""
    found = [entry_of(snapshot, ref).get("clientConfig") or {} for ref in snapshot.entries]
    found += [conversions.client_config(crd) or {} for crd in snapshot.crds.values()]
    return found


def url_hosts(snapshot: Snapshot) -> list[str]:
    """Hosts named in ``url:`` client configs (they need to be in the serving certificate)."""
    hosts = []
    for client_config in client_configs(snapshot):
        url = client_config.get("url")
        if url and urlsplit(url).hostname:
            hosts.append(str(urlsplit(url).hostname))
    return hosts


def service_port(service: Json, port: int) -> Json:
    """The Service's port entry the webhook dials, with a clear error if missing."""
    for entry in (service.get("spec") or {}).get("ports") or []:
        if entry.get("port") == port:
            return dict(entry)
    meta = service.get("metadata") or {}
    ports = ", ".join(str(p.get("port")) for p in (service.get("spec") or {}).get("ports") or [])
    raise PreflightError(
        f"Service {meta.get('namespace')}/{meta.get('name')} has no port {port} "
        f"(its ports: {ports or 'none'})",
        hint="the webhook's clientConfig.service.port must be one of the Service's ports",
    )


# --- the plan -------------------------------------------------------------------------------


def build_plan(snapshot: Snapshot, target: Target) -> RedirectPlan:
    """The field changes and creates that redirect the chosen entries to the tunnel."""
    check_master_address(target.master_address)
    validate_snapshot(snapshot)
    plan = RedirectPlan()
    svc = service_target(snapshot)
    if svc is not None:
        _redirect_service(plan, snapshot, svc, target)
    ca_b64 = base64.b64encode(target.ca_pem).decode()
    for ref in snapshot.entries:
        _redirect_entry(plan, snapshot, ref, target, ca_b64)
    for name, crd in sorted(snapshot.crds.items()):
        _redirect_conversion(plan, name, crd, target, ca_b64)
    return plan


def check_master_address(address: str) -> None:
    """kube-apiserver refuses loopback and link-local endpoints; say so before changing anything."""
    if not is_ip_address(address):
        raise PreflightError(
            f"master address {address!r} is not an IP address",
            hint="pass --master-address with the IP the apiserver reaches the master on",
        )
    if not usable_endpoint_ip(address):
        raise PreflightError(
            f"master address {address} cannot be an Endpoint (kube-apiserver refuses "
            "loopback, link-local and unspecified addresses)",
            hint="pass --master-address with the master's node IP",
        )


def validate_snapshot(snapshot: Snapshot) -> None:
    """The checks on the cluster's objects that need no tunnel; raise before any change."""
    svc = service_target(snapshot)
    if svc is None:
        return
    if snapshot.service is None:
        raise PreflightError(
            f"Service {svc.namespace}/{svc.name} does not exist",
            hint="the webhook configuration names it; create it or fix clientConfig.service",
        )
    spec = snapshot.service.get("spec") or {}
    if spec.get("clusterIP") == "None":
        raise PreflightError(
            f"Service {svc.namespace}/{svc.name} is headless (clusterIP: None)",
            hint="kube-apiserver cannot call a webhook through a headless Service",
        )
    if spec.get("type") == "ExternalName":
        raise PreflightError(
            f"Service {svc.namespace}/{svc.name} is of type ExternalName",
            hint="redirect needs a ClusterIP Service",
        )
    service_port(snapshot.service, svc.port)


def _redirect_service(
    plan: RedirectPlan, snapshot: Snapshot, svc: ServiceTarget, target: Target
) -> None:
    service = snapshot.service or {}
    port = service_port(service, svc.port)
    core = f"/api/v1/namespaces/{svc.namespace}"
    service_ref = ObjectRef("Service", f"{core}/services", svc.name)
    selector = get_field(service, ("spec", "selector"))
    if selector is not ABSENT and selector:
        plan.changes.append(FieldChange(service_ref, ("spec", "selector"), selector, ABSENT))

    endpoint_port: Json = {"port": target.tunnel_port, "protocol": "TCP"}
    if port.get("name"):
        endpoint_port["name"] = port["name"]
    subsets = [{"addresses": [{"ip": target.master_address}], "ports": [endpoint_port]}]
    endpoints_ref = ObjectRef("Endpoints", f"{core}/endpoints", svc.name)
    if snapshot.endpoints is None:
        plan.creates.append(
            ObjectCreate(
                endpoints_ref,
                {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {
                        "name": svc.name,
                        "namespace": svc.namespace,
                        "labels": {SKIP_MIRROR_LABEL: "true"},
                    },
                    "subsets": subsets,
                },
            )
        )
    else:
        endpoints = snapshot.endpoints
        plan.changes.append(
            FieldChange(endpoints_ref, ("subsets",), get_field(endpoints, ("subsets",)), subsets)
        )
        plan.changes.append(
            FieldChange(
                endpoints_ref,
                ("metadata", "labels", SKIP_MIRROR_LABEL),
                get_field(endpoints, ("metadata", "labels", SKIP_MIRROR_LABEL)),
                "true",
            )
        )
    for endpoint_slice in snapshot.endpoint_slices:
        metadata = endpoint_slice["metadata"]
        manager = (metadata.get("labels") or {}).get(MANAGED_BY_LABEL)
        if manager == CONTROLLER_MANAGER and endpoint_slice.get("endpoints"):
            plan.changes.append(
                FieldChange(
                    ObjectRef("EndpointSlice", slices_path(svc.namespace), metadata["name"]),
                    ("endpoints",),
                    endpoint_slice["endpoints"],
                    [],
                )
            )
    slice_name = f"{svc.name}-webhook-dev"
    plan.creates.append(
        ObjectCreate(
            ObjectRef("EndpointSlice", slices_path(svc.namespace), slice_name),
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": slice_name,
                    "namespace": svc.namespace,
                    "labels": {SERVICE_NAME_LABEL: svc.name, MANAGED_BY_LABEL: MANAGED_BY},
                    "annotations": {"webhook-dev/session": target.session_id},
                },
                "addressType": "IPv6" if ":" in target.master_address else "IPv4",
                "endpoints": [
                    {"addresses": [target.master_address], "conditions": {"ready": True}}
                ],
                "ports": [dict(endpoint_port)],
            },
        )
    )


def _redirect_entry(
    plan: RedirectPlan, snapshot: Snapshot, ref: EntryRef, target: Target, ca_b64: str
) -> None:
    config_ref = ObjectRef(ref.config_kind, CONFIG_COLLECTIONS[ref.config_kind], ref.config_name)
    entry = entry_of(snapshot, ref)
    base = ("webhooks", ("name", ref.entry_name))
    client_config = entry.get("clientConfig") or {}
    plan.changes += client_config_changes(
        config_ref, (*base, "clientConfig"), client_config, target, ca_b64
    )
    if target.relax_failure_policy:
        plan.changes.append(
            FieldChange(
                config_ref, (*base, "failurePolicy"), entry.get("failurePolicy", ABSENT), "Ignore"
            )
        )
        plan.changes.append(
            FieldChange(
                config_ref,
                (*base, "timeoutSeconds"),
                entry.get("timeoutSeconds", ABSENT),
                target.timeout_seconds,
            )
        )


def _redirect_conversion(
    plan: RedirectPlan, name: str, crd: Json, target: Target, ca_b64: str
) -> None:
    """Our CA in the conversion's ``caBundle`` (a ``url:`` one also gets the tunnel's URL).

    Nothing else: a conversion has no failurePolicy or timeoutSeconds to relax.
    """
    crd_ref = ObjectRef(conversions.CRD_KIND, conversions.CRD_COLLECTION, name)
    client_config = conversions.client_config(crd) or {}
    plan.changes += client_config_changes(
        crd_ref, conversions.CLIENT_CONFIG_PATH, client_config, target, ca_b64
    )


def client_config_changes(
    ref: ObjectRef,
    path: tuple[PathStep, ...],
    client_config: Json,
    target: Target,
    ca_b64: str,
) -> list[FieldChange]:
    """A caller's clientConfig (at ``path`` in ``ref``) trusting our CA, and for ``url:``
    calling the tunnel: the same two changes for webhook entries and conversions."""
    changes = [
        FieldChange(
            ref,
            (*path, "caBundle"),
            client_config.get("caBundle", ABSENT),
            ca_b64,
            ChangeKind.BUNDLE_APPEND,
        )
    ]
    if client_config.get("url"):
        changes.append(
            FieldChange(
                ref,
                (*path, "url"),
                client_config["url"],
                tunnel_url(client_config["url"], target),
            )
        )
    return changes


def tunnel_url(url: str, target: Target) -> str:
    """The ``url:`` a redirected entry gets: same path and query, host and port of the tunnel."""
    parts = urlsplit(url)
    host = f"[{target.master_address}]" if ":" in target.master_address else target.master_address
    return urlunsplit(("https", f"{host}:{target.tunnel_port}", parts.path, parts.query, ""))
