"""The workstation's own CA: created once, kept in the state directory, never sent anywhere.

``serve`` and ``up`` both use it, so a ``caBundle`` that trusts it trusts whatever either
serves. Only the CA *certificate* goes into the cluster; the key stays in ``ca.key`` (0600).
Serving certificates are cheap and reissued when their names change or they near expiry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from webhook_dev.errors import UsageError
from webhook_dev.paths import ensure_private_dir, state_dir, write_private
from webhook_dev.tls import certs

_CA_NAME = "webhook-dev local CA"
_RENEW_BEFORE = timedelta(days=30)


class LocalAuthority:
    """The local CA on disk, and the serving certificates it has issued."""

    def __init__(self, directory: Path, ca: certs.Issued) -> None:
        self.directory = directory
        self._ca = ca

    @classmethod
    def load_or_create(cls, directory: Path | None = None) -> LocalAuthority:
        """Load ``<state>/ca``, creating the CA on first use.

        A half-written CA (crash between the two files) is replaced: nothing can have
        trusted it yet, because the certificate is written last.
        """
        directory = ensure_private_dir(directory or state_dir() / "ca")
        cert_path, key_path = directory / "ca.crt", directory / "ca.key"
        if cert_path.exists() and key_path.exists():
            _check_private(key_path)
            return cls(directory, certs.Issued(cert_path.read_bytes(), key_path.read_bytes()))
        ca = certs.new_ca(_CA_NAME)
        write_private(key_path, ca.key_pem)
        write_private(cert_path, ca.cert_pem)
        cert_path.chmod(0o644)
        return cls(directory, ca)

    @property
    def ca_cert_pem(self) -> bytes:
        return self._ca.cert_pem

    @property
    def ca_cert_path(self) -> Path:
        return self.directory / "ca.crt"

    def issue(
        self, *, dns_names: Sequence[str] = (), ip_addresses: Sequence[str] = ()
    ) -> certs.Issued:
        """A fresh serving certificate in memory (nothing written)."""
        return certs.new_serving_cert(self._ca, dns_names=dns_names, ip_addresses=ip_addresses)

    def serving_files(
        self, name: str, *, dns_names: Sequence[str], ip_addresses: Sequence[str] = ()
    ) -> tuple[Path, Path]:
        """``(cert.pem, key.pem)`` for ``name`` under the CA directory, reissued if stale.

        Stale means: issued by another CA, names differ, or less than 30 days left.
        """
        folder = ensure_private_dir(self.directory / "serving" / name)
        cert_path, key_path = folder / "cert.pem", folder / "key.pem"
        if not self._is_current(cert_path, key_path, dns_names, ip_addresses):
            issued = self.issue(dns_names=dns_names, ip_addresses=ip_addresses)
            write_private(key_path, issued.key_pem)
            write_private(cert_path, issued.cert_pem)
        return cert_path, key_path

    def _is_current(
        self,
        cert_path: Path,
        key_path: Path,
        dns_names: Sequence[str],
        ip_addresses: Sequence[str],
    ) -> bool:
        if not (cert_path.exists() and key_path.exists()):
            return False
        pem = cert_path.read_bytes()
        if not certs.is_issued_by(pem, self._ca.cert_pem):
            return False
        dns, ips = certs.subject_alternative_names(pem)
        same_names = set(dns) == set(dns_names) and set(ips) == set(ip_addresses)
        return same_names and certs.remaining_validity(pem) > _RENEW_BEFORE


def _check_private(key_path: Path) -> None:
    mode = key_path.stat().st_mode & 0o777
    if mode & 0o077:
        raise UsageError(
            f"the CA key {key_path} is readable by others (mode {mode:o})",
            hint=f"run: chmod 600 {key_path}",
        )
