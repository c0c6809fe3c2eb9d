"""The generated Go wrapper modules that build the lab's binaries (pure text, no I/O).

``k8s.io/kubernetes`` is not meant to be depended on: its go.mod requires every staging
module (``k8s.io/api``, ``k8s.io/client-go``, ...) at ``v0.0.0`` and replaces it with a
directory inside its own repository. A module that requires it must therefore replace each
staging module with the published ``v0.<minor>.<patch>`` tag of the same release. Staging
modules that are never published (``sample-controller``...) are simply left out: nothing
we build imports them.
"""

from __future__ import annotations

import re

_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[A-Za-z0-9._-]+)\s+=>\s+\./staging/", re.MULTILINE)
_GO_DIRECTIVE = re.compile(r"^go\s+(\d+)\.(\d+)(?:\.(\d+))?\s*$", re.MULTILINE)

# Version information that upstream's build scripts inject with -X; without it every
# binary reports v0.0.0-master and clients warn about skew.
_VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")


def staging_modules(kubernetes_go_mod: str) -> list[str]:
    """The staging module paths that k8s.io/kubernetes replaces with in-repo directories."""
    return sorted(set(_STAGING_REPLACE.findall(kubernetes_go_mod)))


def staging_version(kubernetes_version: str) -> str:
    """``1.37.2`` → ``v0.37.2``: the tag staging modules carry for a Kubernetes release."""
    major, minor, patch = kubernetes_version.split(".")
    if major != "1":
        raise ValueError(f"unexpected Kubernetes version {kubernetes_version!r}")
    return f"v0.{minor}.{patch}"


def required_go(go_mod: str) -> tuple[int, int, int]:
    """The ``go`` directive of a go.mod, as a comparable tuple (``go 1.26.0`` → (1, 26, 0))."""
    match = _GO_DIRECTIVE.search(go_mod)
    if not match:
        return (1, 0, 0)
    major, minor, patch = match.groups()
    return (int(major), int(minor), int(patch or 0))


def kubernetes_wrapper_go_mod(
    kubernetes_version: str,
    published_staging: list[str],
    go_version: tuple[int, int, int],
    *,
    module: str = "webhookdev.local/k8sbuild",
) -> str:
    """go.mod of a module that builds against k8s.io/kubernetes at one release: the
    wrapper of its commands, or a program of ours (``module`` names it)."""
    tag = staging_version(kubernetes_version)
    lines = [
        f"module {module}",
        "",
        f"go {go_version[0]}.{go_version[1]}.{go_version[2]}",
        "",
        f"require k8s.io/kubernetes v{kubernetes_version}",
        "",
    ]
    lines += [f"replace {module} => {module} {tag}" for module in published_staging]
    return "\n".join(lines) + "\n"


def etcd_wrapper_go_mod(etcd_version: str) -> str:
    """go.mod of the wrapper that builds the etcd server at one release."""
    return (
        "module webhookdev.local/etcdbuild\n\n"
        "go 1.24\n\n"
        f"require go.etcd.io/etcd/server/v3 v{etcd_version}\n"
    )


def tools_go(packages: list[str]) -> str:
    """A build-tagged file that imports the main packages so ``go mod tidy`` keeps them."""
    imports = "\n".join(f'\t_ "{package}"' for package in packages)
    return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


def kubernetes_ldflags(kubernetes_version: str) -> str:
    """The -X flags that make ``--version`` and ``/version`` report the real release."""
    _, minor, _ = kubernetes_version.split(".")
    values = {
        "gitVersion": f"v{kubernetes_version}",
        "gitMajor": "1",
        "gitMinor": minor,
        "gitTreeState": "clean",
    }
    flags = [
        f"-X {package}.{name}={value}"
        for package in _VERSION_PACKAGES
        for name, value in values.items()
    ]
    return " ".join(["-s", "-w", *flags])
