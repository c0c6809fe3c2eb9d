"""Whose calls a personal redirect takes: some namespaces and/or some requesters. Pure.

A :class:`Scope` is what ``--only-namespace``, ``--only-user`` and ``--only-group`` say. A
request is in scope when it is in one of the namespaces (if any are named) *and* made by
one of the users or by a member of one of the groups (if any are named). The apiserver can
choose by exactly these two things — ``namespaceSelector`` and CEL ``matchConditions`` on
``request.userInfo`` — and an admission call carries nothing else we could route on.

The names a personal redirect leaves in the cluster are made here, so they are plainly
ours and whose:

* the copy: ``webhook-dev.<owner>.<original configuration>``;
* our elements in the original entries, and the copy's condition: ``webhook-dev.<owner>.<token>``
  (a ``matchCondition``'s name; a value of our ``NotIn`` expression — namespace names
  cannot contain dots, so that value never matches a namespace, and it makes the
  expression ours by identity, so ``down`` removes exactly it);
* the record (journal and lock): the subject's record name plus ``.<owner>.<token>``.

``<owner>`` is the Kubernetes user who runs ``up``; ``<token>`` is a digest of the scope and
what it redirects, so the same scope always gets the same names.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NAMESPACE_LABEL = "kubernetes.io/metadata.name"
MARKER_PREFIX = "webhook-dev."
#: Kubernetes versions from which ``matchConditions`` are GA (and always on).
MATCH_CONDITIONS_GA = (1, 30)


@dataclass(frozen=True)
class Scope:
    """Namespaces and requesters; an empty dimension means "all" in that dimension."""

    namespaces: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field_name in ("namespaces", "users", "groups"):
            object.__setattr__(self, field_name, tuple(sorted(set(getattr(self, field_name)))))

    @property
    def has_requesters(self) -> bool:
        return bool(self.users or self.groups)

    def __bool__(self) -> bool:
        return bool(self.namespaces or self.has_requesters)

    def overlaps(self, other: Scope) -> bool:
        """Whether one request could be in both scopes, as far as we can know.

        Group membership is not visible to us (a user may be in any group), so any scope
        naming groups may share requesters with any other requester scope; only disjoint
        namespaces then keep two scopes apart.
        """
        namespaces_meet = (
            not self.namespaces
            or not other.namespaces
            or bool(set(self.namespaces) & set(other.namespaces))
        )
        if not self.has_requesters or not other.has_requesters or self.groups or other.groups:
            requesters_meet = True
        else:
            requesters_meet = bool(set(self.users) & set(other.users))
        return namespaces_meet and requesters_meet

    def describe(self) -> str:
        parts = []
        if self.namespaces:
            parts.append(f"namespaces {', '.join(self.namespaces)}")
        if self.users:
            parts.append(f"users {', '.join(self.users)}")
        if self.groups:
            parts.append(f"groups {', '.join(self.groups)}")
        return "; ".join(parts) or "everything"

    def to_json(self) -> dict[str, list[str]]:
        return {
            "namespaces": list(self.namespaces),
            "users": list(self.users),
            "groups": list(self.groups),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scope:
        return cls(
            tuple(data.get("namespaces") or ()),
            tuple(data.get("users") or ()),
            tuple(data.get("groups") or ()),
        )

    def token(self, subject: str) -> str:
        """Eight hex digits naming this scope of ``subject`` (stable across runs)."""
        text = json.dumps([subject, self.to_json()], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    # --- the CEL the apiserver evaluates ----------------------------------------------------

    def requester_expression(self) -> str:
        """CEL true for a request made by one of the users or a member of one of the groups."""
        tests = []
        if self.users:
            tests.append(f"request.userInfo.username in {_cel_list(self.users)}")
        if self.groups:
            tests.append(
                "has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in "
                f"{_cel_list(self.groups)})"
            )
        return " || ".join(f"({test})" for test in tests)

    def in_scope_expression(self) -> str:
        """CEL true for a request in this scope (namespace *and* requester)."""
        tests = []
        if self.namespaces:
            tests.append(f"request.namespace in {_cel_list(self.namespaces)}")
        if self.has_requesters:
            tests.append(self.requester_expression())
        return " && ".join(f"({test})" for test in tests)


def _cel_list(values: tuple[str, ...]) -> str:
    """A CEL list of string literals; JSON's escapes (``\\"``, ``\\\\``, ``\\uXXXX``) are CEL's."""
    return "[" + ", ".join(json.dumps(value) for value in values) + "]"


# --- names ----------------------------------------------------------------------------------


def owner_label(username: str) -> str:
    """A Kubernetes user name as a DNS label: ``system:serviceaccount:ns:sa`` → ``system-…``."""
    label = re.sub(r"[^a-z0-9-]+", "-", username.lower()).strip("-")
    return label[:40].strip("-") or "someone"


def marker(owner: str, token: str) -> str:
    """Our elements' identity: a matchCondition name and a NotIn value (at most 63 chars)."""
    return f"{MARKER_PREFIX}{owner}.{token}"


def copy_name(owner: str, config_name: str) -> str:
    """The personal copy's configuration name (a DNS subdomain, at most 253 characters)."""
    name = f"{MARKER_PREFIX}{owner}.{config_name}"
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[:242].rstrip('-.')}.{digest}"


def is_ours(element: Any) -> bool:
    """Whether a list element is some personal redirect's (anyone's) exclusion."""
    if not isinstance(element, Mapping):
        return False
    if str(element.get("name", "")).startswith(MARKER_PREFIX):
        return True
    values = element.get("values") or []
    return any(str(value).startswith(MARKER_PREFIX) for value in values)


def version_allows_match_conditions(major: str, minor: str) -> bool:
    """``/version``'s major and minor (minor may read ``30+``) at least 1.30."""
    try:
        found = (int(re.sub(r"\D", "", major)), int(re.sub(r"\D", "", minor)))
    except ValueError:
        return False
    return found >= MATCH_CONDITIONS_GA
