"""Certificates for webhook serving and for the lab's control plane. Pure: no files, no network.

Why this module exists instead of openssl scripts: the apiserver verifies a webhook's serving
certificate against ``caBundle`` with Go's x509 — SANs only (the CN is ignored), ``serverAuth``
in extended key usage, a CA with ``keyCertSign`` — and a mistake in any of these makes every
admission call fail. Everything here produces certificates that pass that check by
construction, and the unit tests verify them the same way.

Keys are ECDSA P-256: fast to generate (the lab makes several at start) and accepted by
kube-apiserver, etcd and OpenSSL alike.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Backdate so a clock a little behind on the verifying side (a VM, the master) still accepts.
_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM-encoded."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def new_private_key_pem() -> bytes:
    """A fresh P-256 private key in PKCS#8 PEM (e.g. for service-account token signing)."""
    return _key_to_pem(ec.generate_private_key(ec.SECP256R1()))


def public_key_pem(private_key_pem: bytes) -> bytes:
    """The SubjectPublicKeyInfo PEM of a private key."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def new_ca(common_name: str, *, now: datetime | None = None, valid_days: int = 3650) -> Issued:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = (now or datetime.now(UTC)) - _CLOCK_SKEW
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate.public_bytes(serialization.Encoding.PEM), _key_to_pem(key))


def new_serving_cert(
    ca: Issued,
    *,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    now: datetime | None = None,
    valid_days: int = 365,
) -> Issued:
    """A TLS server certificate for the given names, signed by ``ca``.

    Go's TLS stack (kube-apiserver's webhook client) matches only SANs, never the CN, so at
    least one name is required.
    """
    if not dns_names and not ip_addresses:
        raise ValueError("a serving certificate needs at least one DNS name or IP address")
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in _unique(dns_names)]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in _unique(ip_addresses)]
    common_name = dns_names[0] if dns_names else ip_addresses[0]
    return _leaf(
        ca,
        common_name=common_name,
        organizations=(),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=sans,
        now=now,
        valid_days=valid_days,
    )


def new_client_cert(
    ca: Issued,
    *,
    common_name: str,
    organizations: Sequence[str] = (),
    now: datetime | None = None,
    valid_days: int = 365,
) -> Issued:
    """A TLS client certificate; Kubernetes reads the user from CN and groups from O."""
    return _leaf(
        ca,
        common_name=common_name,
        organizations=organizations,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        sans=[],
        now=now,
        valid_days=valid_days,
    )


def service_dns_names(service: str, namespace: str) -> list[str]:
    """Every name a client inside the cluster may use for a Service.

    kube-apiserver dials ``<svc>.<ns>.svc`` for a ``service:`` webhook client config; the
    other forms are what in-cluster clients and ``url:`` configs commonly use.
    """
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    ]


def split_bundle(bundle_pem: bytes) -> list[bytes]:
    """The PEM certificates in a bundle, each normalised to end with one newline."""
    marker = b"-----END CERTIFICATE-----"
    parts = []
    for chunk in bundle_pem.split(marker)[:-1]:
        begin = chunk.find(b"-----BEGIN CERTIFICATE-----")
        if begin >= 0:
            parts.append(chunk[begin:] + marker + b"\n")
    return parts


def append_to_bundle(bundle_pem: bytes, cert_pem: bytes) -> bytes:
    """``bundle_pem`` with ``cert_pem`` appended, unless it is there already.

    Appending (not replacing) keeps the webhook's real CA trusted, so in-cluster replicas and
    anything else that verifies against the bundle keep working during a session.
    """
    wanted = _fingerprint(cert_pem)
    existing = split_bundle(bundle_pem)
    if any(_fingerprint(pem) == wanted for pem in existing):
        return bundle_pem
    prefix = bundle_pem if not bundle_pem or bundle_pem.endswith(b"\n") else bundle_pem + b"\n"
    return prefix + split_bundle(cert_pem)[0]


def bundle_contains(bundle_pem: bytes, cert_pem: bytes) -> bool:
    """Whether ``cert_pem`` is one of the certificates in ``bundle_pem``."""
    wanted = _fingerprint(cert_pem)
    return any(_fingerprint(pem) == wanted for pem in split_bundle(bundle_pem))


def is_issued_by(cert_pem: bytes, ca_cert_pem: bytes) -> bool:
    """Whether ``ca_cert_pem``'s key signed ``cert_pem`` (not merely a CA of the same name)."""
    certificate = x509.load_pem_x509_certificate(cert_pem)
    try:
        certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_cert_pem))
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def remaining_validity(cert_pem: bytes, *, now: datetime | None = None) -> timedelta:
    """How long a certificate stays valid from ``now`` (negative once expired)."""
    certificate = x509.load_pem_x509_certificate(cert_pem)
    return certificate.not_valid_after_utc - (now or datetime.now(UTC))


def subject_alternative_names(cert_pem: bytes) -> tuple[list[str], list[str]]:
    """The DNS names and IP addresses a certificate covers."""
    certificate = x509.load_pem_x509_certificate(cert_pem)
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    dns = sans.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    return dns, ips


def _leaf(
    ca: Issued,
    *,
    common_name: str,
    organizations: Sequence[str],
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName],
    now: datetime | None,
    valid_days: int,
) -> Issued:
    ca_cert = ca.certificate
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key must be an EC key made by new_ca()")
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    start = (now or datetime.now(UTC)) - _CLOCK_SKEW
    # A leaf may not outlive its CA: Go rejects such chains only at expiry, which is worse.
    end = min(start + timedelta(days=valid_days), ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                key_cert_sign=False,
                crl_sign=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    certificate = builder.sign(ca_key, hashes.SHA256())
    return Issued(certificate.public_bytes(serialization.Encoding.PEM), _key_to_pem(key))


def _key_to_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _fingerprint(cert_pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256())


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))
