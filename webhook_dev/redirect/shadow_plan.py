"""Shadow mode as data: a copy entry beside each production entry, never in its way. Pure.

``up --shadow`` changes no decision of the cluster. It leaves the Service, its Endpoints
and slices, the Pods and every field of the production entries alone, and plans one
**copy entry** per shadowed production entry, inserted into the *same* configuration just
before it (:attr:`~webhook_dev.redirect.plan.ChangeKind.ENTRY_INSERT`, journaled like
every change; ``down`` removes exactly the entry with our name):

* the production entry's rules, selectors, ``matchConditions`` (other personal redirects'
  exclusions included: a teammate's scope is not production's) and ``admissionReviewVersions``;
  with ``--only-*`` narrowed to that scope as a personal copy is
  (:func:`~webhook_dev.redirect.personal_plan.copy_entry`, the one implementation);
* ``clientConfig``: this session's transport by ``url:`` at ``/webhook-dev/shadow/<key>``
  (the key names the production entry) with our CA; the local proxy answers it at once;
* ``failurePolicy: Ignore``, ``timeoutSeconds: 1``, ``sideEffects: None``, and for a mutating
  copy ``reinvocationPolicy: Never``: a sleeping laptop costs a call at most one second,
  and never its decision.

Why *in* the production entry's configuration, just before it: mutating webhooks run one
after another in order of configuration name, then entry order; the copy must see the very
object production sees, so nothing may run between them. The copy never patches (the
proxy answers ``allowed: true`` and nothing else), so production still sees what it saw
without us. Validating entries run in parallel; the same placement costs nothing.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from webhook_dev.redirect import scope as scopes
from webhook_dev.redirect.personal_plan import Personal, copy_entry
from webhook_dev.redirect.plan import (
    ABSENT,
    ChangeKind,
    FieldChange,
    Json,
    ObjectRef,
    RedirectPlan,
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
from webhook_dev.reviews.shadow import SHADOW_PATH, target_key

#: The copy's timeout: the most a call of the cluster can wait for this machine.
COPY_TIMEOUT_SECONDS = 1
SHADOW_MARKER = "webhook-dev-shadow."


@dataclass(frozen=True)
class Shadowing:
    """Whose shadow this is and of which calls; the copies' names come from these."""

    scope: Scope  # empty: every call production gets
    owner: str  # a DNS label: scope.owner_label(the Kubernetes user)
    token: str
    user: str = ""  # the Kubernetes user, as the journal names its owner for `down`

    @property
    def personal(self) -> Personal:
        return Personal(self.scope, self.owner, self.token)

    @property
    def holder_suffix(self) -> str:
        """The record's personal part: ``shadow-<owner>.<token>``."""
        return f"shadow-{self.owner}.{self.token}"

    def entry_name(self, original: str) -> str:
        """The copy's entry name: ours by its prefix, unique per owner and scope, a fully
        qualified name (three segments or more) of at most 253 characters."""
        name = f"{SHADOW_MARKER}{self.owner}.{self.token}.{original}"
        if len(name) <= 253:
            return name
        digest = hashlib.sha256(name.encode()).hexdigest()[:10]
        return f"{name[:242].rstrip('-.')}.{digest}"


@dataclass(frozen=True)
class ShadowedEntry:
    """One production entry and its copy, as the session serves and reaches it."""

    ref: EntryRef
    key: str  # the copy's path segment
    copy_name: str
    production: Json  # the production entry as it is


def is_shadow_entry(entry: Json) -> bool:
    """Whether a webhook entry is some shadow session's copy (anyone's)."""
    return str(entry.get("name", "")).startswith(SHADOW_MARKER)


def build_shadow_plan(
    snapshot: Snapshot, target: Target, shadowing: Shadowing
) -> tuple[RedirectPlan, list[ShadowedEntry]]:
    """The copy entries to insert, and what each shadows."""
    check_master_address(target.master_address)
    ca_b64 = base64.b64encode(target.ca_pem).decode()
    plan = RedirectPlan()
    shadowed = []
    for ref in snapshot.entries:
        production = entry_of(snapshot, ref)
        if is_shadow_entry(production):
            continue
        key = target_key(ref.config_kind, ref.config_name, ref.entry_name)
        entry = shadow_entry(production, ref.config_kind, target, shadowing, ca_b64, key)
        plan.changes.append(
            FieldChange(
                ObjectRef(ref.config_kind, CONFIG_COLLECTIONS[ref.config_kind], ref.config_name),
                ("webhooks", ("name", ref.entry_name)),
                ABSENT,
                entry,
                ChangeKind.ENTRY_INSERT,
            )
        )
        shadowed.append(ShadowedEntry(ref, key, entry["name"], production))
    return plan, shadowed


def shadow_entry(
    production: Json, config_kind: str, target: Target, shadowing: Shadowing, ca_b64: str, key: str
) -> Json:
    """The copy of one production entry (see the module's doc)."""
    entry = copy_entry(production, target, shadowing.personal, ca_b64, keep_others=True)
    entry["name"] = shadowing.entry_name(production["name"])
    entry["clientConfig"] = {
        "url": tunnel_url(f"https://shadow{SHADOW_PATH}{key}", target),
        "caBundle": ca_b64,
    }
    entry["failurePolicy"] = "Ignore"
    entry["timeoutSeconds"] = COPY_TIMEOUT_SECONDS
    entry["sideEffects"] = "None"
    if config_kind == MUTATING:
        # Never: production runs after the copy and may patch, which would make an
        # IfNeeded copy be called again for an object production itself is not asked about.
        entry["reinvocationPolicy"] = "Never"
    return entry


def copy_refs(plan: RedirectPlan) -> list[EntryRef]:
    """The copies' entries (what the probe must reach)."""
    return [
        EntryRef(change.ref.kind, change.ref.name, change.after["name"])
        for change in plan.changes
        if change.kind is ChangeKind.ENTRY_INSERT
    ]


def copy_snapshot(snapshot: Snapshot, plan: RedirectPlan) -> Snapshot:
    """The configurations with the copies in place, as a :class:`Snapshot` of the copies,
    for the probe that proves the path."""
    configs: dict[tuple[str, str], Json] = {}
    for change in plan.changes:
        if change.kind is not ChangeKind.ENTRY_INSERT:
            continue
        key = (change.ref.kind, change.ref.name)
        config = configs.setdefault(key, {**snapshot.configs[key], "webhooks": []})
        config["webhooks"].append(change.after)
    return Snapshot(configs=configs, entries=copy_refs(plan))


def token_of(scope: Scope, subject: str) -> str:
    """The shadow's token: its scope's, apart from a personal redirect's of the same scope."""
    return scopes.Scope.token(scope, f"shadow:{subject}")
