"""The redirect as data: what ``up`` changes in the cluster and how ``down`` undoes it. Pure.

A plan is a list of :class:`FieldChange`, each naming one object, one field inside it, the
value before and the value ``up`` sets. Restoring works field by field against the *current*
object, not by writing back a saved manifest, because between ``up`` and ``down`` other
actors legitimately touch the same objects (cert-manager rewrites ``caBundle``, someone edits
an annotation). For each field:

* current == what ``up`` set   → put back the value from before ("restored");
* current == the value before → nothing to do ("already");
* anything else                → someone else changed it: leave it and report ("conflict").

``caBundle`` is special: ``up`` *appends* our CA, so its inverse removes exactly our CA from
whatever bundle is there now, which survives a rewrite by a CA injector.

A personal redirect's exclusion is special the same way: ``up`` *adds one element* to a list
(a ``namespaceSelector`` expression, a ``matchCondition``) that others may edit too — a
teammate adds a rule, another personal redirect adds its own exclusion. Its inverse
removes exactly our element, found by identity, from whatever list is there now, so every
other element (theirs, added before or during the session) stays.

Shadow mode's copy entry is special the same way (:attr:`ChangeKind.ENTRY_INSERT`): ``up``
inserts one entry of its own, named as ours, into a configuration's ``webhooks``, just before
the production entry the path names; ``before`` is :data:`ABSENT` (the entry did not exist).
Its inverse removes exactly the entry with our name, wherever it is now; every other entry
stays as it is.

Paths address list items of ``webhooks`` by entry name, not index, so a reordering by
someone else cannot make us restore the wrong entry.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from webhook_dev.tls import certs

#: The value of a field that is not there (JSON has no such value; this marks it).
ABSENT: Any = {"$webhook-dev": "absent"}

SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY = "webhook-dev"

Json = dict[str, Any]
#: A path step is a mapping key, or ``("name", <entry>)`` for a list item found by its name.
PathStep = str | tuple[str, str]


class ChangeKind(StrEnum):
    SET = "set"  # the field holds exactly ``after`` during the session
    BUNDLE_APPEND = "bundle-append"  # a base64 PEM bundle that has our CA appended
    LIST_ADD = "list-add"  # a list that holds our element ``after`` among others' elements
    # A webhook entry of ours (``after``, found by its name) placed just before the entry
    # the path names (``up --shadow``'s copy: a mutating copy sees what production sees).
    ENTRY_INSERT = "entry-insert"


class Outcome(StrEnum):
    RESTORED = "restored"
    ALREADY = "already"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class ObjectRef:
    """Which object: its REST collection path and name (namespace is in the path)."""

    kind: str
    api_path: str  # e.g. "/api/v1/namespaces/webhooks/endpoints"
    name: str

    @property
    def url(self) -> str:
        return f"{self.api_path}/{self.name}"

    def __str__(self) -> str:
        namespace = (
            self.api_path.split("/namespaces/")[1].split("/")[0]
            if ("/namespaces/" in self.api_path)
            else None
        )
        return f"{self.kind} {namespace}/{self.name}" if namespace else f"{self.kind} {self.name}"


@dataclass(frozen=True)
class FieldChange:
    """One field of one object: its value before ``up`` and the value ``up`` sets."""

    ref: ObjectRef
    path: tuple[PathStep, ...]
    before: Any
    after: Any
    kind: ChangeKind = ChangeKind.SET

    def describe(self) -> str:
        return f"{self.ref} {render_path(self.path)}"


@dataclass(frozen=True)
class ObjectCreate:
    """An object ``up`` creates (our EndpointSlice; Endpoints that did not exist).

    ``adopt``: the transport created it before the journal (``--relay``'s Pod, whose IP the
    plan needs); applying the plan leaves it as it is, ``down`` deletes it like the rest.
    """

    ref: ObjectRef
    manifest: Json
    adopt: bool = False


@dataclass
class RedirectPlan:
    """Everything ``up`` will do, in order. Serialisable, so it can be the journal."""

    changes: list[FieldChange] = field(default_factory=list)
    creates: list[ObjectCreate] = field(default_factory=list)

    def refs(self) -> list[ObjectRef]:
        """Objects touched, in the order changes apply, each once."""
        seen = dict.fromkeys([c.ref for c in self.changes] + [c.ref for c in self.creates])
        return list(seen)

    def changes_for(self, ref: ObjectRef) -> list[FieldChange]:
        return [change for change in self.changes if change.ref == ref]

    def to_json(self) -> Json:
        return {
            "changes": [_change_to_json(change) for change in self.changes],
            "creates": [
                {
                    "ref": _ref_to_json(create.ref),
                    "manifest": create.manifest,
                    **({"adopt": True} if create.adopt else {}),
                }
                for create in self.creates
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RedirectPlan:
        return cls(
            changes=[_change_from_json(item) for item in data.get("changes", [])],
            creates=[
                ObjectCreate(_ref_from_json(item["ref"]), item["manifest"], bool(item.get("adopt")))
                for item in data.get("creates", [])
            ],
        )


@dataclass(frozen=True)
class FieldResult:
    change: FieldChange
    outcome: Outcome
    current: Any = None


# --- reading and writing fields -----------------------------------------------------------


def get_field(obj: Json, path: Sequence[PathStep]) -> Any:
    """The value at ``path`` in ``obj``, or :data:`ABSENT`."""
    node: Any = obj
    for step in path:
        node = _child(node, step)
        if node is ABSENT:
            return ABSENT
    return node


def set_field(obj: Json, path: Sequence[PathStep], value: Any) -> None:
    """Set (or with :data:`ABSENT`, remove) the value at ``path``, creating parent maps."""
    node: Any = obj
    for step in path[:-1]:
        child = _child(node, step)
        if child is ABSENT:
            if isinstance(step, tuple):
                raise KeyError(f"no list item named {step[1]!r}")
            child = node[step] = {}
        node = child
    last = path[-1]
    if isinstance(last, tuple):
        raise ValueError("a path must end in a mapping key")
    if value is ABSENT:
        node.pop(last, None)
    else:
        node[last] = copy.deepcopy(value)


def render_path(path: Sequence[PathStep]) -> str:
    parts = [f"[{step[1]}]" if isinstance(step, tuple) else f".{step}" for step in path]
    return "".join(parts).lstrip(".")


def _child(node: Any, step: PathStep) -> Any:
    if isinstance(step, tuple):
        key, wanted = step
        if not isinstance(node, list):
            return ABSENT
        for item in node:
            if isinstance(item, dict) and item.get(key) == wanted:
                return item
        return ABSENT
    if not isinstance(node, dict) or step not in node:
        return ABSENT
    return node[step]


# --- applying and restoring ---------------------------------------------------------------


def apply_changes(obj: Json, changes: Iterable[FieldChange]) -> Json:
    """``obj`` with the session's values set (idempotent)."""
    result = copy.deepcopy(obj)
    for change in changes:
        if change.kind is ChangeKind.BUNDLE_APPEND:
            current = get_field(result, change.path)
            set_field(result, change.path, bundle_with(current, change.after))
        elif change.kind is ChangeKind.LIST_ADD:
            current = get_field(result, change.path)
            elements = list(current) if isinstance(current, list) else []
            if not any(same_element(item, change.after) for item in elements):
                set_field(result, change.path, [*elements, change.after])
        elif change.kind is ChangeKind.ENTRY_INSERT:
            _insert_entry(result, change)
        else:
            set_field(result, change.path, change.after)
    return result


def restore_changes(obj: Json, changes: Iterable[FieldChange]) -> tuple[Json, list[FieldResult]]:
    """``obj`` with every field ``up`` set put back, where nobody else changed it since."""
    result = copy.deepcopy(obj)
    outcomes: list[FieldResult] = []
    for change in changes:
        current = get_field(result, change.path)
        if change.kind is ChangeKind.BUNDLE_APPEND:
            outcome, restored = _restore_bundle(current, change)
        elif change.kind is ChangeKind.LIST_ADD:
            outcome, restored = _restore_list(current, change)
        elif change.kind is ChangeKind.ENTRY_INSERT:
            outcomes.append(FieldResult(change, _remove_entry(result, change), current))
            continue
        elif _same(current, change.before):
            outcome, restored = Outcome.ALREADY, current
        elif _same(current, change.after):
            outcome, restored = Outcome.RESTORED, change.before
        else:
            outcome, restored = Outcome.CONFLICT, current
        if outcome is Outcome.RESTORED:
            set_field(result, change.path, restored)
        outcomes.append(FieldResult(change, outcome, current))
    return result, outcomes


def _insert_entry(obj: Json, change: FieldChange) -> None:
    """Put our entry just before the anchor entry (idempotent: by our entry's name).

    Without the anchor (someone deleted the production entry) there is nothing to
    shadow, and nothing is added.
    """
    entries = get_field(obj, change.path[:-1])
    anchor = change.path[-1]
    if not isinstance(entries, list) or not isinstance(anchor, tuple):
        return
    if any(same_element(entry, change.after) for entry in entries):
        return
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get(anchor[0]) == anchor[1]:
            entries.insert(index, copy.deepcopy(change.after))
            return


def _remove_entry(obj: Json, change: FieldChange) -> Outcome:
    """Remove our entry, found by its name wherever it is now; nothing else."""
    entries = get_field(obj, change.path[:-1])
    if not isinstance(entries, list):
        return Outcome.ALREADY
    kept = [entry for entry in entries if not same_element(entry, change.after)]
    if len(kept) == len(entries):
        return Outcome.ALREADY
    entries[:] = kept
    return Outcome.RESTORED


def _restore_bundle(current: Any, change: FieldChange) -> tuple[Outcome, Any]:
    """Remove our CA (``change.after``) from whatever bundle is there now."""
    if current is ABSENT or not certs.bundle_contains(
        _b64decode(current), _b64decode(change.after)
    ):
        return Outcome.ALREADY, current
    remaining = bundle_without(current, change.after)
    if remaining == "" and change.before is ABSENT:
        return Outcome.RESTORED, ABSENT
    # Byte-exact when the bundle is as we left it (also after reconnects, which added more
    # copies of our CA); otherwise keep the new owner's bundle.
    if _is_ours_on_top(current, change.before, change.after):
        return Outcome.RESTORED, change.before
    return Outcome.RESTORED, remaining


def _restore_list(current: Any, change: FieldChange) -> tuple[Outcome, Any]:
    """Remove our element (``change.after``) from whatever list is there now, nothing else.

    Never a conflict: others' elements are not ours to judge, and ours is identified by
    itself, not by position. When ours was the only element and the field was absent
    before, the field goes away again, so an untouched entry reads exactly as before.
    """
    if not isinstance(current, list) or not any(
        same_element(item, change.after) for item in current
    ):
        return Outcome.ALREADY, current
    remaining = [item for item in current if not same_element(item, change.after)]
    if not remaining and _is_empty(change.before):
        return Outcome.RESTORED, change.before
    return Outcome.RESTORED, remaining


def same_element(left: Any, right: Any) -> bool:
    """One list element is another: by ``name`` when both have one (``matchConditions``),
    else by whole value (a selector expression; ours carries a marker value that makes it
    unique, see :mod:`webhook_dev.redirect.scope`)."""
    if isinstance(left, dict) and isinstance(right, dict) and "name" in left and "name" in right:
        return bool(left["name"] == right["name"])
    return canonical(left) == canonical(right)


def bundle_with(bundle_b64: Any, ca_b64: str) -> str:
    existing = b"" if bundle_b64 is ABSENT or not bundle_b64 else _b64decode(bundle_b64)
    return _b64encode(certs.append_to_bundle(existing, _b64decode(ca_b64)))


def bundle_with_another_copy(bundle_b64: Any, ca_b64: str) -> str:
    """``bundle_b64`` (which holds our CA) with our CA once more at its end.

    The same trust, a different ``caBundle``: the apiserver keys its webhook clients by the
    client configuration, caBundle included, so a new value makes it dial new connections
    (:func:`reconnect_changes`). ``down`` removes every copy (:func:`bundle_without`).
    """
    existing = b"" if bundle_b64 is ABSENT or not bundle_b64 else _b64decode(bundle_b64)
    prefix = existing if not existing or existing.endswith(b"\n") else existing + b"\n"
    return _b64encode(prefix + certs.split_bundle(_b64decode(ca_b64))[0])


def _is_ours_on_top(current: Any, before: Any, ca_b64: str) -> bool:
    """Whether ``current`` is ``before`` with our CA appended one or more times."""
    if current is ABSENT or not current:
        return False
    rest = _b64decode(current)
    base = _b64decode(bundle_with(before, ca_b64))
    if not rest.startswith(base):
        return False
    ours = certs.split_bundle(_b64decode(ca_b64))[0]
    rest = rest[len(base) :]
    while rest.startswith(ours):
        rest = rest[len(ours) :]
    return rest == b""


def reconnect_changes(obj: Json, changes: Iterable[FieldChange]) -> Json:
    """``obj`` with one more copy of our CA in each bundle ``up`` appended to.

    For when the apiserver keeps calling the in-cluster Pods over a connection it opened
    before kube-proxy (or its own endpoint cache) switched to our endpoints: conntrack keeps
    an established connection on its old destination, and a busy webhook client never lets
    it go idle. A new ``caBundle`` is a new client, whose connections take the new route.
    """
    result = copy.deepcopy(obj)
    for change in changes:
        if change.kind is ChangeKind.BUNDLE_APPEND:
            current = get_field(result, change.path)
            set_field(result, change.path, bundle_with_another_copy(current, change.after))
    return result


def bundle_without(bundle_b64: str, ca_b64: str) -> str:
    ours = _b64decode(ca_b64)
    kept = [
        pem
        for pem in certs.split_bundle(_b64decode(bundle_b64))
        if not certs.bundle_contains(pem, ours)
    ]
    return _b64encode(b"".join(kept)) if kept else ""


def _same(left: Any, right: Any) -> bool:
    """Equal as the apiserver sees it: absent, null, [] and {} are one value (omitempty).

    We may write ``endpoints: []`` and read back ``null``; that is still what we wrote.
    """
    if _is_empty(left) or _is_empty(right):
        return _is_empty(left) and _is_empty(right)
    return bool(left == right)


def _is_empty(value: Any) -> bool:
    return value is ABSENT or value is None or value == [] or value == {}


def _b64decode(value: str) -> bytes:
    return base64.b64decode(value)


def _b64encode(value: bytes) -> str:
    return base64.b64encode(value).decode()


# --- journal serialisation ----------------------------------------------------------------


def _encode_value(value: Any) -> Any:
    return {"absent": True} if value is ABSENT else {"value": value}


def _decode_value(data: Mapping[str, Any]) -> Any:
    return ABSENT if data.get("absent") else data["value"]


def _ref_to_json(ref: ObjectRef) -> Json:
    return {"kind": ref.kind, "apiPath": ref.api_path, "name": ref.name}


def _ref_from_json(data: Mapping[str, Any]) -> ObjectRef:
    return ObjectRef(data["kind"], data["apiPath"], data["name"])


def _change_to_json(change: FieldChange) -> Json:
    return {
        "ref": _ref_to_json(change.ref),
        "path": [list(step) if isinstance(step, tuple) else step for step in change.path],
        "before": _encode_value(change.before),
        "after": _encode_value(change.after),
        "kind": change.kind.value,
    }


def _change_from_json(data: Mapping[str, Any]) -> FieldChange:
    path = tuple((step[0], step[1]) if isinstance(step, list) else step for step in data["path"])
    return FieldChange(
        ref=_ref_from_json(data["ref"]),
        path=path,
        before=_decode_value(data["before"]),
        after=_decode_value(data["after"]),
        kind=ChangeKind(data["kind"]),
    )


def canonical(obj: Any) -> str:
    """A stable text of a JSON value, for equality checks that ignore key order."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
