"""The proof with only CRD conversions redirected: a call that makes the apiserver convert.

A fake apiserver (the in-memory cluster of test_apply) "calls the webhook" by handing the
proof an exchange shaped like a ConversionReview when it is asked for an object in a
non-storage version, as kube-apiserver does.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.redirect.test_apply import InMemoryCluster
from tests.unit.redirect.test_conversion_callers import SIDECAR_SERVICE, WEBSITES, crd
from webhook_dev.errors import ClusterError
from webhook_dev.redirect import conversions, probe_objects
from webhook_dev.redirect.plan_builder import Snapshot
from webhook_dev.redirect.proof import PathProof
from webhook_dev.reviews.exchange import Exchange

Json = dict[str, Any]
STORED = {
    "apiVersion": "samples.webhook-dev.io/v1",
    "kind": "Website",
    "metadata": {"name": "blog", "namespace": "web"},
    "spec": {"host": "blog.example.com", "port": 8080},
}


class ConvertingCluster(InMemoryCluster):
    """Reads in v2 and creates in v2 go through the conversion webhook: the proof sees a
    ConversionReview for the object; ``schema_refuses`` makes a create fail validation
    first, as a CRD schema with required fields does."""

    def __init__(self, objects: list[Json], stored: list[Json], proof: list[PathProof]) -> None:
        super().__init__(objects)
        self.stored = stored
        self.proof = proof
        self.schema_refuses = False
        self.calls: list[str] = []

    def request(
        self, method: str, path: str, body: Any = None, *, query: Any = None, **kw: Any
    ) -> Json:
        if "/samples.webhook-dev.io/" not in path:
            return super().request(method, path, body, query=query, **kw)
        self.calls.append(f"{method} {path}")
        if method == "GET" and path.endswith("/websites"):
            assert "/v1/" in path, "the object to read is found without converting"
            return {"items": copy.deepcopy(self.stored)}
        if method == "POST" and self.schema_refuses:
            raise ClusterError(
                f"POST {path}: Website.samples.webhook-dev.io is invalid: spec: Required value"
            )
        obj = body if method == "POST" else self.stored[0]
        self.convert(obj)
        return copy.deepcopy(obj)

    def convert(self, obj: Json) -> None:
        review = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {"uid": "u1", "desiredAPIVersion": "x", "objects": [obj]},
        }
        exchange = Exchange(
            id="1", started=datetime.now(UTC), path="/convert", request_review=review
        )
        loop = self.loop
        loop.call_soon_threadsafe(self.proof[0].on_exchange, exchange)

    loop: asyncio.AbstractEventLoop


def _snapshot() -> Snapshot:
    return Snapshot(configs={}, entries=[], crds={WEBSITES: crd(WEBSITES, SIDECAR_SERVICE)})


async def _prove(
    stored: list[Json], schema_refuses: bool = False
) -> tuple[float | None, list[str], ConvertingCluster]:
    said: list[str] = []
    holder: list[PathProof] = []
    cluster = ConvertingCluster([], stored, holder)
    cluster.loop = asyncio.get_running_loop()
    cluster.schema_refuses = schema_refuses
    proof = PathProof(cluster, said.append)
    holder.append(proof)
    round_trip = await asyncio.wait_for(proof.prove(_snapshot(), asyncio.Event()), 5)
    return round_trip, said, cluster


def test_an_existing_object_is_read_in_the_other_version() -> None:
    round_trip, said, cluster = asyncio.run(_prove([STORED]))

    assert round_trip is not None, said
    assert "GET /apis/samples.webhook-dev.io/v2/namespaces/web/websites/blog" in cluster.calls
    assert not any(call.startswith("POST") for call in cluster.calls)


def test_without_objects_a_minimal_object_is_dry_run_created_in_the_other_version() -> None:
    round_trip, said, cluster = asyncio.run(_prove([]))

    assert round_trip is not None, said
    creates = {call for call in cluster.calls if call.startswith("POST")}
    assert creates == {"POST /apis/samples.webhook-dev.io/v2/namespaces/default/websites"}


def test_a_schema_refusing_the_minimal_object_is_said_at_once_not_waited_for() -> None:
    round_trip, said, _ = asyncio.run(_prove([], schema_refuses=True))

    assert round_trip is None
    [line] = said
    assert line.startswith("ready, but the path is not proven: the apiserver refused a dry-run")
    assert "spec: Required value" in line


def test_a_crd_serving_only_its_storage_version_has_no_conversion_probe() -> None:
    single = crd(WEBSITES, SIDECAR_SERVICE)
    single["spec"]["versions"] = [{"name": "v1", "served": True, "storage": True}]

    assert probe_objects.conversion_probe(conversions.versions(single), None) is None


@pytest.mark.parametrize("namespaced", [True, False])
def test_the_minimal_object_names_the_served_version_and_the_kind(namespaced: bool) -> None:
    definition = crd(WEBSITES, SIDECAR_SERVICE)
    definition["spec"]["scope"] = "Namespaced" if namespaced else "Cluster"

    probe = probe_objects.conversion_probe(conversions.versions(definition), None)

    assert probe is not None and probe.manifest is not None
    assert probe.manifest["apiVersion"] == "samples.webhook-dev.io/v2"
    assert probe.manifest["kind"] == "Website"
    assert ("namespace" in probe.manifest["metadata"]) is namespaced
    assert probe.path.endswith("/websites")
