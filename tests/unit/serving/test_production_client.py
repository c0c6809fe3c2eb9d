"""Reaching production as the apiserver does: HTTPS checked against the entry's caBundle and
the Service's name, through a local port (the Pod port-forward) — here a loopback server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.reviews import request_review
from tests.tls_production import tls_production
from webhook_dev.serving.production import ProductionAddress, ProductionClient
from webhook_dev.tls import certs

SERVICE_NAME = "injector.team.svc"


async def answer(request: web.Request) -> web.Response:
    review = await request.json()
    response = {"uid": review["request"]["uid"], "allowed": False, "status": {"message": "no"}}
    return web.json_response({**review, "response": response})


@pytest.fixture
async def production(tmp_path: Path) -> AsyncIterator[tuple[int, bytes]]:
    """A TLS server on loopback with a certificate for the Service's name only."""
    async with tls_production(tmp_path, SERVICE_NAME, answer) as served:
        yield served


async def test_production_is_verified_against_the_services_name_through_a_local_port(
    production: tuple[int, bytes],
) -> None:
    port, ca_pem = production
    client = ProductionClient(
        ProductionAddress(f"https://{SERVICE_NAME}:443/mutate", ca_pem, dial=("127.0.0.1", port))
    )
    body = json.dumps(request_review(uid="u-9")).encode()
    try:
        answered = await client.send(body, "timeout=10s", 5.0)
    finally:
        await client.close()
    assert answered.status == 200, answered.error
    assert json.loads(answered.body)["response"] == {
        "uid": "u-9",
        "allowed": False,
        "status": {"message": "no"},
    }


async def test_a_certificate_from_another_ca_is_refused(production: tuple[int, bytes]) -> None:
    port, _ = production
    stranger = certs.new_ca("someone else").cert_pem
    client = ProductionClient(
        ProductionAddress(f"https://{SERVICE_NAME}:443/mutate", stranger, dial=("127.0.0.1", port))
    )
    try:
        answered = await client.send(b"{}", "", 5.0)
    finally:
        await client.close()
    assert answered.status in (0, 502) and answered.error is not None
    assert "certificate" in answered.error.lower() or "ssl" in answered.error.lower()
