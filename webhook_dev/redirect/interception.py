"""Which webhook entries a CREATE of an object would be sent to, as the apiserver decides. Pure.

``up --relay`` creates a ConfigMap and a Pod in the webhook's own namespace; the
conformance layout (docs/relay.md) has the webhook being developed intercept exactly
those, with its backend down and ``failurePolicy: Fail``. Two things need the
apiserver's matching, and read it from here:

* the session's *shield* (:func:`shield_changes`): every redirected entry that would be
  sent the relay's objects gets an ``objectSelector`` expression excluding them
  (``<relay label> DoesNotExist``), journaled and applied before the relay exists, and
  restored by ``down`` like every other change;
* ``doctor --relay`` (:func:`interceptors`): the *other* entries that would still see
  them, named in advance (a mutating one changes the relay Pod; any with
  ``failurePolicy: Fail`` blocks it while its backend is down; any may deny it).

The matching follows admission/v1 (``k8s.io/apiserver/pkg/admission/plugin/webhook``):
rules (operations, apiGroups, apiVersions, resources, scope), ``namespaceSelector``
against the namespace's labels, ``objectSelector`` against the object's labels.
``matchConditions`` are CEL, which only the apiserver evaluates: an entry that has them
*may* match, and is reported as such.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook_dev.redirect.plan import ABSENT, ChangeKind, FieldChange, ObjectRef
from webhook_dev.redirect.plan_builder import (
    CONFIG_COLLECTIONS,
    MUTATING,
    EntryRef,
    Snapshot,
    entry_of,
)
from webhook_dev.redirect.probe_objects import selector_matches

Json = dict[str, Any]


@dataclass(frozen=True)
class Created:
    """An object about to be created: enough to match it against webhook entries."""

    resource: str  # plural, core group: "pods", "configmaps"
    namespace: str
    labels: Mapping[str, str]
    group: str = ""
    version: str = "v1"


@dataclass(frozen=True)
class Interceptor:
    """An entry that would be sent a CREATE of ``created``."""

    entry: EntryRef
    created: Created
    mutating: bool
    fails_closed: bool  # failurePolicy Fail (admission/v1's default)
    conditional: bool  # has matchConditions: matches only if they hold

    def describe(self) -> str:
        kind = "mutating" if self.mutating else "validating"
        effects = ["may change it"] if self.mutating else []
        effects.append(
            "blocks it while its backend is down (failurePolicy Fail)"
            if self.fails_closed
            else "may deny it"
        )
        condition = " if its matchConditions hold" if self.conditional else ""
        return (
            f"{kind} webhook {self.entry} intercepts {self.created.resource} in "
            f"{self.created.namespace}{condition}: {', '.join(effects)}"
        )


def exclusion(label: str) -> Json:
    """The ``objectSelector`` expression that keeps objects labelled ``label`` out."""
    return {"key": label, "operator": "DoesNotExist"}


def shield_changes(snapshot: Snapshot, created: Sequence[Created], label: str) -> list[FieldChange]:
    """Exclude objects labelled ``label`` from every redirected entry whose rules would be
    sent one of ``created`` (selectors aside: they may change during the session)."""
    changes = []
    for ref in snapshot.entries:
        entry = entry_of(snapshot, ref)
        if not any(rules_match(entry, item) for item in created):
            continue
        config_ref = ObjectRef(
            ref.config_kind, CONFIG_COLLECTIONS[ref.config_kind], ref.config_name
        )
        path = ("webhooks", ("name", ref.entry_name), "objectSelector", "matchExpressions")
        selector = entry.get("objectSelector") or {}
        changes.append(
            FieldChange(
                config_ref,
                path,
                selector.get("matchExpressions", ABSENT),
                exclusion(label),
                ChangeKind.LIST_ADD,
            )
        )
    return changes


def interceptors(
    configs: Mapping[tuple[str, str], Json],
    created: Sequence[Created],
    namespace_labels: Mapping[str, str],
    *,
    skip: Iterable[EntryRef] = (),
) -> list[Interceptor]:
    """Every entry of ``configs`` (but ``skip``) that a CREATE of ``created`` reaches."""
    skipped = set(skip)
    found = []
    for (kind, name), config in sorted(configs.items()):
        for entry in config.get("webhooks") or []:
            ref = EntryRef(kind, name, str(entry.get("name", "")))
            if ref in skipped:
                continue
            for item in created:
                if (
                    rules_match(entry, item)
                    and selector_matches(entry.get("namespaceSelector"), namespace_labels)
                    and selector_matches(entry.get("objectSelector"), item.labels)
                ):
                    found.append(
                        Interceptor(
                            ref,
                            item,
                            mutating=kind == MUTATING,
                            fails_closed=entry.get("failurePolicy", "Fail") == "Fail",
                            conditional=bool(entry.get("matchConditions")),
                        )
                    )
    return found


def rules_match(entry: Mapping[str, Any], created: Created) -> bool:
    """Whether one of the entry's rules covers a CREATE of ``created`` (namespaced)."""
    for rule in entry.get("rules") or []:
        if (
            _has(rule.get("operations"), "CREATE")
            and _has(rule.get("apiGroups"), created.group)
            and _has(rule.get("apiVersions"), created.version)
            and _resource_matches(rule.get("resources") or [], created.resource)
            and rule.get("scope", "*") in ("*", "Namespaced")
        ):
            return True
    return False


def _has(values: Any, wanted: str) -> bool:
    return isinstance(values, list) and ("*" in values or wanted in values)


def _resource_matches(resources: list[Any], resource: str) -> bool:
    """``pods``, ``*`` or ``*/*`` cover a CREATE of pods; ``pods/*`` only subresources."""
    return any(item in (resource, "*", "*/*") for item in resources)
