"""The workstation's redaction key: ``<state>/redaction.key``, created (0600) on first use.

One key for all recordings of this workstation, so equal secrets give equal markers across
them (replay compares answers about Secrets) while nothing else can be learned from them.
"""

from __future__ import annotations

import secrets

from webhook_dev.paths import state_dir, write_private


def redaction_key() -> bytes:
    """The key, created on first use."""
    path = state_dir() / "redaction.key"
    if not path.exists():
        write_private(path, secrets.token_bytes(32))
    return path.read_bytes()
