"""Certificates must pass the checks kube-apiserver's Go TLS client makes; we verify them
with a real TLS handshake (Python's ssl, which like Go checks SANs and the chain)."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from webhook_dev.errors import UsageError
from webhook_dev.tls import certs
from webhook_dev.tls.authority import LocalAuthority


async def _handshake(tmp_path: Path, served: certs.Issued, ca_pem: bytes, server_name: str) -> None:
    (tmp_path / "cert.pem").write_bytes(served.cert_pem)
    (tmp_path / "key.pem").write_bytes(served.key_pem)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client_ctx = ssl.create_default_context(cadata=ca_pem.decode())

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname=server_name
        )
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_serving_cert_verifies_for_every_service_name(tmp_path: Path) -> None:
    ca = certs.new_ca("test CA")
    names = certs.service_dns_names("sidecar", "webhooks")
    served = certs.new_serving_cert(ca, dns_names=names)
    for name in names:
        await _handshake(tmp_path, served, ca.cert_pem, name)


async def test_serving_cert_is_refused_for_a_name_it_does_not_cover(tmp_path: Path) -> None:
    ca = certs.new_ca("test CA")
    served = certs.new_serving_cert(ca, dns_names=certs.service_dns_names("a", "b"))
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(tmp_path, served, ca.cert_pem, "other.b.svc")


async def test_serving_cert_by_another_ca_is_refused(tmp_path: Path) -> None:
    served = certs.new_serving_cert(certs.new_ca("one"), dns_names=["x"])
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(tmp_path, served, certs.new_ca("two").cert_pem, "x")


def test_ip_addresses_are_ip_sans_not_dns_names() -> None:
    served = certs.new_serving_cert(certs.new_ca("ca"), ip_addresses=["127.0.0.1", "::1"])
    assert certs.subject_alternative_names(served.cert_pem) == ([], ["127.0.0.1", "::1"])


def test_a_serving_cert_needs_a_name() -> None:
    with pytest.raises(ValueError, match="at least one"):
        certs.new_serving_cert(certs.new_ca("ca"))


def test_leaf_never_outlives_its_ca() -> None:
    ca = certs.new_ca("short", valid_days=10)
    leaf = certs.new_serving_cert(ca, dns_names=["x"], valid_days=365)
    assert leaf.certificate.not_valid_after_utc <= ca.certificate.not_valid_after_utc


def test_append_keeps_the_existing_bundle_and_is_idempotent() -> None:
    theirs, ours = certs.new_ca("theirs"), certs.new_ca("ours")
    bundle = certs.append_to_bundle(theirs.cert_pem, ours.cert_pem)
    assert bundle.startswith(theirs.cert_pem)
    assert certs.bundle_contains(bundle, theirs.cert_pem)
    assert certs.bundle_contains(bundle, ours.cert_pem)
    assert certs.append_to_bundle(bundle, ours.cert_pem) == bundle


def test_append_to_an_empty_bundle_gives_just_our_ca() -> None:
    ours = certs.new_ca("ours")
    assert certs.split_bundle(certs.append_to_bundle(b"", ours.cert_pem)) == [ours.cert_pem]


def test_append_tolerates_a_bundle_without_final_newline() -> None:
    theirs, ours = certs.new_ca("theirs"), certs.new_ca("ours")
    bundle = certs.append_to_bundle(theirs.cert_pem.rstrip(b"\n"), ours.cert_pem)
    assert len(certs.split_bundle(bundle)) == 2


def test_is_issued_by_checks_the_signature_not_the_name() -> None:
    ca, impostor = certs.new_ca("same name"), certs.new_ca("same name")
    leaf = certs.new_serving_cert(ca, dns_names=["x"])
    assert certs.is_issued_by(leaf.cert_pem, ca.cert_pem)
    assert not certs.is_issued_by(leaf.cert_pem, impostor.cert_pem)


def test_client_cert_carries_user_and_groups() -> None:
    client = certs.new_client_cert(
        certs.new_ca("ca"), common_name="admin", organizations=["system:masters"]
    )
    subject = client.certificate.subject.rfc4514_string()
    assert "CN=admin" in subject and "O=system:masters" in subject


def test_local_authority_is_created_once_with_private_key_0600(tmp_path: Path) -> None:
    first = LocalAuthority.load_or_create(tmp_path / "ca")
    second = LocalAuthority.load_or_create(tmp_path / "ca")
    assert first.ca_cert_pem == second.ca_cert_pem
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ca").stat().st_mode & 0o777 == 0o700


def test_local_authority_refuses_a_world_readable_key(tmp_path: Path) -> None:
    LocalAuthority.load_or_create(tmp_path / "ca")
    (tmp_path / "ca" / "ca.key").chmod(0o644)
    with pytest.raises(UsageError, match="chmod 600"):
        LocalAuthority.load_or_create(tmp_path / "ca")


def test_serving_files_are_reused_until_names_change(tmp_path: Path) -> None:
    authority = LocalAuthority.load_or_create(tmp_path / "ca")
    cert1, key1 = authority.serving_files(
        "serve", dns_names=["localhost"], ip_addresses=["127.0.0.1"]
    )
    pem1 = cert1.read_bytes()
    cert2, _ = authority.serving_files("serve", dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    assert cert2.read_bytes() == pem1
    cert3, _ = authority.serving_files(
        "serve", dns_names=["localhost", "x"], ip_addresses=["127.0.0.1"]
    )
    assert cert3.read_bytes() != pem1
    assert key1.stat().st_mode & 0o777 == 0o600


def test_remaining_validity_counts_from_now() -> None:
    ca = certs.new_ca("ca")
    leaf = certs.new_serving_cert(ca, dns_names=["x"], valid_days=2)
    later = datetime.now(UTC) + timedelta(days=3)
    assert certs.remaining_validity(leaf.cert_pem, now=later) < timedelta(0)
