"""Where webhook-dev keeps state on the workstation.

State (the local CA, journals, recordings by default) lives in ``$WEBHOOK_DEV_STATE_DIR``
or the XDG state directory; caches (built Kubernetes binaries) in ``$WEBHOOK_DEV_CACHE_DIR``
or the XDG cache directory. Both are created 0700: they hold private keys.
"""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(env_var: str, default: str) -> Path:
    value = os.environ.get(env_var)
    return Path(value) if value else Path.home() / default


def state_dir() -> Path:
    """The directory for the CA, journals and session files; created 0700 on first use."""
    override = os.environ.get("WEBHOOK_DEV_STATE_DIR")
    path = Path(override) if override else _xdg("XDG_STATE_HOME", ".local/state") / "webhook-dev"
    return ensure_private_dir(path)


def cache_dir() -> Path:
    """The directory for rebuildable things such as the lab's Kubernetes binaries."""
    override = os.environ.get("WEBHOOK_DEV_CACHE_DIR")
    path = Path(override) if override else _xdg("XDG_CACHE_HOME", ".cache") / "webhook-dev"
    path.mkdir(parents=True, exist_ok=True)
    return path


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700, since it may hold private keys."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, content: bytes) -> None:
    """Write a secret atomically with mode 0600 from the first byte (no umask window)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
