"""The lab's SSH keys: sshd's host key and the workstation's client key (Ed25519).

Certificates (the apiserver's CA, serving and client certificates, the service-account
signing key) come from :mod:`webhook_dev.tls.certs`, like everything else webhook-dev issues.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519


@dataclass(frozen=True)
class SSHKeyPair:
    """An Ed25519 key in OpenSSH's formats: the private file and the one-line public key."""

    private_openssh: bytes
    public_line: str

    @classmethod
    def create(cls, comment: str) -> SSHKeyPair:
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        public = (
            key.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )
        return cls(private, f"{public} {comment}")
