"""A personal redirect as data: a scoped copy of each entry, and the originals narrowed. Pure.

Instead of pointing the Service at the tunnel (which takes every call of the cluster),
``up --only-namespace/--only-user/--only-group`` leaves the Service, its Endpoints and
slices and the in-cluster Pods alone and plans:

* one **copy** per configuration, ``webhook-dev.<owner>.<config>`` (created, so ``down``
  deletes it), holding a copy of each chosen entry that calls the session's transport by
  ``url:`` (there is no Service to point at) with our CA as its ``caBundle``, limited to the
  scope: ``kubernetes.io/metadata.name In [...]`` added to the original's
  ``namespaceSelector`` and a CEL ``matchCondition`` on ``request.userInfo`` added to the
  original's conditions. The guard (``failurePolicy: Ignore``, a short timeout) applies to
  the copy only; everything else, ``reinvocationPolicy`` included, is the original's;
* the **exclusion** of exactly that scope from each original entry, as one element added
  to one list (:attr:`~webhook_dev.redirect.plan.ChangeKind.LIST_ADD`): with namespaces
  only, a ``NotIn`` expression in its ``namespaceSelector``; with requesters, one CEL
  ``matchCondition`` that is false for in-scope calls (namespace *and* requester, so a
  scope of both excludes no more than it takes).

Other personal redirects' elements in the original are not copied: the copy is the team's
entry, limited to our scope, not limited by a teammate's.

A copy with a namespace scope has its rules limited to ``scope: Namespaced``: a
``namespaceSelector`` does not apply to cluster-scoped objects, which would otherwise reach
both the copy and the original.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass

from webhook_dev.redirect import scope as scopes
from webhook_dev.redirect.plan import (
    ChangeKind,
    FieldChange,
    Json,
    ObjectCreate,
    ObjectRef,
    RedirectPlan,
    get_field,
)
from webhook_dev.redirect.plan_builder import (
    CONFIG_COLLECTIONS,
    MUTATING,
    EntryRef,
    Snapshot,
    Target,
    check_master_address,
    entry_of,
    tunnel_url,
)
from webhook_dev.redirect.scope import Scope

COPY_OF_LABEL = "webhook-dev.io/personal-copy-of"
OWNER_LABEL = "webhook-dev.io/owner"
MANAGED_LABEL = "app.kubernetes.io/managed-by"


@dataclass(frozen=True)
class Personal:
    """Whose redirect this is and what it takes: names are derived from these."""

    scope: Scope
    owner: str  # a DNS label: scope.owner_label(the Kubernetes user)
    token: str  # scope.token(subject)

    @property
    def marker(self) -> str:
        return scopes.marker(self.owner, self.token)

    def copy_name(self, config_name: str) -> str:
        return scopes.copy_name(self.owner, config_name)


def build_personal_plan(snapshot: Snapshot, target: Target, personal: Personal) -> RedirectPlan:
    """The copies to create and the exclusions to add, in the order ``apply`` needs."""
    check_master_address(target.master_address)
    plan = RedirectPlan()
    ca_b64 = base64.b64encode(target.ca_pem).decode()
    for (kind, name), _config in sorted(snapshot.configs.items()):
        refs = [r for r in snapshot.entries if (r.config_kind, r.config_name) == (kind, name)]
        if not refs:
            continue
        plan.creates.append(_copy_of(snapshot, kind, name, refs, target, personal, ca_b64))
        for ref in refs:
            plan.changes.append(_exclusion(snapshot, ref, personal))
    return plan


def copy_refs(plan: RedirectPlan) -> list[EntryRef]:
    """The entries of a personal plan's copies (what the probe must reach)."""
    return [
        EntryRef(create.ref.kind, create.ref.name, entry["name"])
        for create in plan.creates
        if create.ref.kind in CONFIG_COLLECTIONS
        for entry in create.manifest.get("webhooks") or []
    ]


def copy_snapshot(plan: RedirectPlan) -> Snapshot:
    """The copies as a :class:`Snapshot`, for the probe that proves the path."""
    configs = {
        (create.ref.kind, create.ref.name): create.manifest
        for create in plan.creates
        if create.ref.kind in CONFIG_COLLECTIONS
    }
    return Snapshot(configs=configs, entries=copy_refs(plan))


def _copy_of(
    snapshot: Snapshot,
    kind: str,
    name: str,
    refs: list[EntryRef],
    target: Target,
    personal: Personal,
    ca_b64: str,
) -> ObjectCreate:
    copy_name = personal.copy_name(name)
    manifest: Json = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {
            "name": copy_name,
            "labels": {
                MANAGED_LABEL: "webhook-dev-personal",
                COPY_OF_LABEL: name[:63].rstrip("-."),
                OWNER_LABEL: personal.owner,
            },
            "annotations": {
                "webhook-dev/description": f"{personal.owner}'s personal copy of {kind} "
                f"{name} for {personal.scope.describe()}, calling their workstation. "
                "`webhook-dev down` removes it and the exclusion in the original.",
                "webhook-dev/copy-of": name,
                "webhook-dev/scope": personal.scope.describe(),
            },
        },
        "webhooks": [copy_entry(entry_of(snapshot, ref), target, personal, ca_b64) for ref in refs],
    }
    return ObjectCreate(ObjectRef(kind, CONFIG_COLLECTIONS[kind], copy_name), manifest)


def copy_entry(
    original: Json,
    target: Target,
    personal: Personal,
    ca_b64: str,
    *,
    keep_others: bool = False,
) -> Json:
    """The original entry, calling the transport by ``url:``, limited to the scope.

    ``keep_others``: keep the other personal redirects' exclusions in the copy (shadow
    mode's copy sees exactly the calls production sees, and a teammate's scope is not
    production's).
    """
    entry = copy.deepcopy(original)
    scope = personal.scope
    entry["clientConfig"] = {"url": personal_url(original, target), "caBundle": ca_b64}
    selector = dict(entry.get("namespaceSelector") or {})
    expressions = [
        e for e in selector.get("matchExpressions") or [] if keep_others or not scopes.is_ours(e)
    ]
    if scope.namespaces:
        expressions.append(
            {"key": scopes.NAMESPACE_LABEL, "operator": "In", "values": list(scope.namespaces)}
        )
        entry["rules"] = [{**rule, "scope": "Namespaced"} for rule in entry.get("rules") or []]
    if expressions:
        selector["matchExpressions"] = expressions
    else:
        selector.pop("matchExpressions", None)
    entry["namespaceSelector"] = selector
    conditions = [
        c for c in entry.get("matchConditions") or [] if keep_others or not scopes.is_ours(c)
    ]
    if scope.has_requesters:
        conditions.append({"name": personal.marker, "expression": scope.requester_expression()})
    if conditions:
        entry["matchConditions"] = conditions
    else:
        entry.pop("matchConditions", None)
    if target.relax_failure_policy:
        entry["failurePolicy"] = "Ignore"
        entry["timeoutSeconds"] = target.timeout_seconds
    return entry


def personal_url(original: Json, target: Target) -> str:
    """``https://<dial-ip>:<port>/<the original's path>``: the original calls a Service
    (``clientConfig.service.path``) or a ``url:`` (its path and query)."""
    client_config = original.get("clientConfig") or {}
    if client_config.get("url"):
        return tunnel_url(client_config["url"], target)
    path = (client_config.get("service") or {}).get("path") or "/"
    return tunnel_url(f"https://service{path}", target)


def exclusion_element(personal: Personal) -> tuple[tuple[str, ...], Json]:
    """Which list of an original entry gets our element, and the element."""
    scope = personal.scope
    if not scope.has_requesters:
        return ("namespaceSelector", "matchExpressions"), {
            "key": scopes.NAMESPACE_LABEL,
            "operator": "NotIn",
            # The marker is not a possible namespace name (it has dots): identity, no effect.
            "values": [*scope.namespaces, personal.marker],
        }
    return ("matchConditions",), {
        "name": personal.marker,
        "expression": f"!({scope.in_scope_expression()})",
    }


def _exclusion(snapshot: Snapshot, ref: EntryRef, personal: Personal) -> FieldChange:
    entry = entry_of(snapshot, ref)
    path, element = exclusion_element(personal)
    return FieldChange(
        ObjectRef(ref.config_kind, CONFIG_COLLECTIONS[ref.config_kind], ref.config_name),
        ("webhooks", ("name", ref.entry_name), *path),
        get_field(entry, path),
        element,
        ChangeKind.LIST_ADD,
    )


# --- honest about semantics: mutating order ---------------------------------------------------


def ordering_warnings(
    all_configs: dict[tuple[str, str], Json], snapshot: Snapshot, personal: Personal
) -> list[str]:
    """Mutating webhooks run in order of configuration name: name each other mutating
    configuration whose rules meet a copied entry's, and whether the order changes."""
    warnings = []
    for ref in snapshot.entries:
        if ref.config_kind != MUTATING:
            continue
        entry = entry_of(snapshot, ref)
        ours = personal.copy_name(ref.config_name)
        for (kind, other), config in sorted(all_configs.items()):
            if kind != MUTATING or other == ref.config_name or other.startswith("webhook-dev."):
                continue
            if not any(rules_meet(entry, their) for their in config.get("webhooks") or [] if their):
                continue
            before_original = other < ref.config_name
            before_copy = other < ours
            change = (
                "the same order as the original"
                if before_original == before_copy
                else "a different order than the original"
            )
            warnings.append(
                f"mutating webhooks run in order of configuration name: {other} matches the "
                f"same resources as {ref} and runs {'before' if before_copy else 'after'} "
                f"your copy {ours} ({change}); reinvocationPolicy "
                f"{entry.get('reinvocationPolicy', 'Never')} is copied"
            )
    return warnings


def rules_meet(left: Json, right: Json) -> bool:
    """Whether some rule of one entry and some rule of the other share a resource and verb."""

    def meet(a: list[str], b: list[str]) -> bool:
        return "*" in a or "*" in b or bool(set(a) & set(b))

    for rule in left.get("rules") or []:
        for other in right.get("rules") or []:
            resources = [r.split("/")[0] for r in rule.get("resources") or []]
            theirs = [r.split("/")[0] for r in other.get("resources") or []]
            if (
                meet(rule.get("apiGroups") or [], other.get("apiGroups") or [])
                and meet(resources, theirs)
                and meet(rule.get("operations") or [], other.get("operations") or [])
            ):
                return True
    return False
