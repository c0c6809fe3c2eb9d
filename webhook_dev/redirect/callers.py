"""Every caller of what ``up`` redirects, and where its calls go during the session. Pure.

Protocol 8 (docs/architecture.md): before anything changes, ``up`` and ``doctor`` know every
caller — webhook entries and CRD conversions that call the Service, or name a ``url:`` —
and say, one line each, whether it is served here or left untouched. Nothing that calls
the Service may be silently broken by the redirect.
"""

from __future__ import annotations

from dataclasses import dataclass

from webhook_dev.redirect import conversions
from webhook_dev.redirect import plan_builder as redirect
from webhook_dev.redirect.plan import Json
from webhook_dev.redirect.plan_builder import Snapshot

CONVERSION_ROUTE = (
    "this machine (our CA appended; a conversion has no failurePolicy or timeout: while "
    "this machine cannot answer, reads and writes in its other versions fail)"
)


@dataclass(frozen=True)
class Treatment:
    """How the session treats the callers: the whole Service, or one person's scope."""

    relax_failure_policy: bool = True
    timeout_seconds: int = 5
    scope: str | None = None  # a personal redirect's scope, described


def heading(snapshot: Snapshot) -> str:
    target = redirect.service_target(snapshot)
    if target is None:
        return "callers (by url:), and where their calls go during the session:"
    return (
        f"callers of Service {target.namespace}/{target.name}:{target.port}, "
        "and where their calls go during the session:"
    )


def caller_lines(snapshot: Snapshot, treatment: Treatment) -> list[str]:
    """One line per caller: ``<caller> → <where its calls go> (<what changes>)``."""
    lines = [
        f"{_entry_caller(snapshot, ref)} → {_entry_route(treatment)}" for ref in snapshot.entries
    ]
    lines += [
        f"{_conversion_caller(name, crd)} → {CONVERSION_ROUTE}"
        for name, crd in sorted(snapshot.crds.items())
    ]
    lines += [
        f"{conversions.CRD_KIND} {name}, conversion → stays with the in-cluster Service "
        "(a conversion cannot be scoped to a person)"
        for name in snapshot.kept_conversions
    ]
    return lines


def _entry_caller(snapshot: Snapshot, ref: redirect.EntryRef) -> str:
    client_config = redirect.entry_of(snapshot, ref).get("clientConfig") or {}
    url = f" (url: {client_config['url']})" if client_config.get("url") else ""
    return f"{ref.config_kind} {ref.config_name}, entry {ref.entry_name}{url}"


def _entry_route(treatment: Treatment) -> str:
    if treatment.scope is not None:
        return (
            f"this machine for {treatment.scope} only, through a personal copy; everyone "
            "else's calls stay with the in-cluster webhook"
        )
    relaxed = (
        f"failurePolicy Ignore, timeoutSeconds {treatment.timeout_seconds}"
        if treatment.relax_failure_policy
        else "failurePolicy and timeout kept"
    )
    return f"this machine (our CA appended; {relaxed})"


def _conversion_caller(name: str, crd: Json) -> str:
    client_config = conversions.client_config(crd) or {}
    url = f" (url: {client_config['url']})" if client_config.get("url") else ""
    versions = conversions.versions(crd)
    between = ", ".join([versions.storage, *versions.other_served])
    return f"{conversions.CRD_KIND} {name}, conversion between {between}{url}"
