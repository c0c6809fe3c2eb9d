"""Find the lab's binaries: an assets directory, then the cache, then a Go build.

Resolution is per binary, so the envtest convention works: ``KUBEBUILDER_ASSETS`` usually
holds etcd, kube-apiserver and kubectl but not kube-controller-manager or kube-proxy, which
then come from the cache (or are built). Binaries from an assets directory are the user's
choice and only have to run; binaries in our cache must report the pinned release.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from webhook_dev.errors import LabError
from webhook_dev.lab import gobuild
from webhook_dev.lab.pins import ALL_BINARIES, KUBERNETES_VERSION, Binary
from webhook_dev.paths import cache_dir


@dataclass(frozen=True)
class ResolvedBinary:
    """Where one binary was found and what ``--version`` said."""

    name: str
    path: Path
    source: str  # "assets", "cache" or "built"
    version: str


def kubernetes_cache_dir() -> Path:
    """``<cache>/k8s/<version>/``: the installed binaries of the pinned release."""
    return cache_dir() / "k8s" / KUBERNETES_VERSION


def build_work_dir() -> Path:
    """Where the generated wrapper modules live between builds (reused, so tidy is quick)."""
    return cache_dir() / "k8s" / "build"


def assets_dir_from(option: str | None) -> Path | None:
    """``--assets DIR`` wins over ``KUBEBUILDER_ASSETS``; an empty value means none."""
    value = option or os.environ.get("KUBEBUILDER_ASSETS")
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise LabError(
            f"assets directory {path} does not exist",
            hint="pass --assets DIR holding etcd and kube-apiserver, or unset KUBEBUILDER_ASSETS",
        )
    return path


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _from_assets(binary: Binary, assets: Path) -> ResolvedBinary | None:
    candidate = assets / binary.name
    if not os.access(candidate, os.X_OK):
        return None
    result = subprocess.run(
        [str(candidate), *binary.version_args], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise LabError(f"{candidate} does not run: {(result.stderr or result.stdout).strip()}")
    return ResolvedBinary(
        binary.name, candidate, "assets", _first_line((result.stdout + result.stderr).strip())
    )


def _from_cache(binary: Binary) -> ResolvedBinary | None:
    candidate = kubernetes_cache_dir() / binary.name
    if not os.access(candidate, os.X_OK):
        return None
    try:
        output = gobuild.verify_version(candidate, binary)
    except LabError:
        return None  # stale or from another pin: rebuild it
    return ResolvedBinary(binary.name, candidate, "cache", _first_line(output))


def _required(binary: Binary, node: bool) -> bool:
    return binary.required and (node or not binary.node)


def resolve(
    assets: Path | None,
    *,
    allow_build: bool,
    progress: gobuild.ProgressCallback | None = None,
    include_optional: bool = True,
    node: bool = False,
) -> dict[str, ResolvedBinary]:
    """Every binary the lab needs, building the missing ones if ``allow_build``.

    The node's binaries (kubelet, kube-scheduler) count as required only with ``node``;
    otherwise they are optional, like kubectl: found if present, built with the rest.
    """
    wanted = [b for b in ALL_BINARIES if _required(b, node) or include_optional]
    resolved: dict[str, ResolvedBinary] = {}
    missing: list[Binary] = []
    for binary in wanted:
        found = (_from_assets(binary, assets) if assets else None) or _from_cache(binary)
        if found:
            resolved[binary.name] = found
        else:
            missing.append(binary)
    if not missing:
        return resolved
    if not allow_build:
        names = ", ".join(b.name for b in missing if _required(b, node))
        if not names:
            return resolved
        raise LabError(
            f"the lab's binaries are not built yet: {names}",
            hint="run `webhook-dev lab build` (tens of minutes once), or pass --assets DIR",
        )
    built = gobuild.build(
        missing, kubernetes_cache_dir(), build_work_dir(), progress or (lambda _tick: None)
    )
    for binary in missing:
        output = gobuild.verify_version(built[binary.name], binary)
        resolved[binary.name] = ResolvedBinary(
            binary.name, built[binary.name], "built", _first_line(output)
        )
    return resolved
