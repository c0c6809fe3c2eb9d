"""What ``up --shadow`` reads and opens in the cluster besides its plan.

* who shadows, and of which calls (:func:`prepare_shadowing`): the Kubernetes user names
  the copies and the record, as for a personal redirect; a scope is checked the same way
  (its namespaces exist; a requester scope needs ``matchConditions``);
* how this machine reaches each production entry (:class:`ProductionReach`): a ``url:``
  entry at its URL, a Service entry through a local port carried to one of its Ready Pods
  by the apiserver's port-forward (:mod:`webhook_dev.tunnel.pod_forward`), each verified
  with the entry's own ``caBundle`` against the name the apiserver verifies.

Shadows block nobody: their lock names no entries, so a redirect or another developer's
shadow of the same webhook goes ahead (two shadows of one entry are two copies side by
side); only the same developer shadowing the same scope twice is refused, by the record.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable, Iterable

from webhook_dev.kube.cluster import Cluster
from webhook_dev.redirect import journal
from webhook_dev.redirect.personal import check_scope, whoami
from webhook_dev.redirect.plan import Json
from webhook_dev.redirect.scope import Scope, owner_label
from webhook_dev.redirect.shadow_plan import ShadowedEntry, Shadowing, token_of
from webhook_dev.reviews.shadow import ShadowSpec
from webhook_dev.serving.production import ProductionAddress
from webhook_dev.serving.shadow import ShadowTarget
from webhook_dev.tunnel.pod_forward import Choose, PodForward, ready_backend

DEFAULT_TIMEOUT_SECONDS = 10.0


def prepare_shadowing(
    cluster: Cluster, base: journal.Subject, scope: Scope
) -> tuple[Shadowing, journal.Subject]:
    """The shadow's names and record subject; checks the scope; changes nothing."""
    check_scope(cluster, scope)
    user = whoami(cluster)
    shadowing = Shadowing(scope, owner_label(user), token_of(scope, base.base), user)
    return shadowing, journal.Subject(base.namespace, base.name, shadowing.holder_suffix)


def side_effect_notes(shadowed: Iterable[ShadowedEntry], spec: ShadowSpec) -> list[str]:
    """One line for each production entry that will not be called a second time."""
    notes = []
    for entry in shadowed:
        refusal = spec.may_call(entry.production.get("sideEffects"), dry_run=False)
        if refusal is not None:
            notes.append(f"{entry.ref}: {refusal} (dry-run calls are compared)")
    return notes


class ProductionReach:
    """How this machine reaches in-cluster webhooks, and the Pod port-forwards that takes:
    shadow mode's production entries, and a redirect's conversion fallback
    (``conversion_fallback``); close it."""

    def __init__(
        self,
        cluster: Cluster,
        say: Callable[[str], None] | None = None,
        choose: Choose = ready_backend,
    ) -> None:
        self.cluster = cluster
        self.say = say  # where production is reached once its Pod is replaced
        self.choose = choose  # selected_backend for a Service this session redirects
        self._forwards: dict[tuple[str, str, int], PodForward] = {}

    async def target(self, key: str, label: str, production: Json) -> ShadowTarget:
        """Where the proxy reaches a production webhook: ``production`` is an entry (or a
        CRD's ``conversion.webhook``), with its ``clientConfig``; ``label`` names it.

        :raises PreflightError: a Service whose Service has no Ready Pod.
        """
        client_config = production.get("clientConfig") or {}
        ca_pem = _ca_of(client_config)
        timeout = float(production.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS)
        side_effects = production.get("sideEffects")
        if client_config.get("url"):
            url = str(client_config["url"])
            path = url.split("://", 1)[-1].partition("/")[2]
            return ShadowTarget(
                key=key,
                entry=label,
                path="/" + path.split("?")[0],
                production=ProductionAddress(url.split("?")[0], ca_pem),
                side_effects=side_effects,
                timeout_seconds=timeout,
            )
        service = client_config.get("service") or {}
        namespace, name = str(service["namespace"]), str(service["name"])
        port = int(service.get("port") or 443)
        path = str(service.get("path") or "/")
        forward = await self._forward(namespace, name, port)
        return ShadowTarget(
            key=key,
            entry=label,
            path=path,
            production=ProductionAddress(
                f"https://{name}.{namespace}.svc:{port}{path}",
                ca_pem,
                dial=("127.0.0.1", forward.port),
            ),
            side_effects=side_effects,
            timeout_seconds=timeout,
        )

    async def _forward(self, namespace: str, name: str, port: int) -> PodForward:
        key = (namespace, name, port)
        if key not in self._forwards:
            service = await asyncio.to_thread(
                self.cluster.get, f"/api/v1/namespaces/{namespace}/services/{name}"
            )
            forward = await asyncio.to_thread(
                PodForward.to_service, self.cluster, service, port, self.say, self.choose
            )
            await forward.start()
            self._forwards[key] = forward
        return self._forwards[key]

    def describe(self) -> list[str]:
        return [forward.describe for forward in self._forwards.values()]

    async def close(self) -> None:
        for forward in self._forwards.values():
            await forward.close()
        self._forwards.clear()


def _ca_of(client_config: dict[str, object]) -> bytes | None:
    bundle = client_config.get("caBundle")
    if not isinstance(bundle, str) or not bundle:
        return None
    try:
        return base64.b64decode(bundle)
    except (binascii.Error, ValueError):
        return None
