"""Find or build the policy evaluator: our Go program that decides admission requests
with the ValidatingAdmissionPolicy and MutatingAdmissionPolicy plugins of the Kubernetes
release the lab pins (``webhook_dev/policy/evaluator/main.go``).

It is cached beside the lab's binaries, named by the release and a hash of its source, so
a new pin or a changed program builds anew and an old binary is never run by mistake.
``webhook-dev lab build`` builds it with the rest; ``replay --policy`` builds it on first
use (a minute or two once the lab's packages are in Go's build cache).
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from webhook_dev.lab import gobuild
from webhook_dev.lab.pins import KUBERNETES_VERSION
from webhook_dev.paths import cache_dir

NAME = "policy-evaluator"


def source() -> str:
    return (resources.files("webhook_dev.policy") / "evaluator" / "main.go").read_text()


def evaluator_path() -> Path:
    """Where the evaluator of this release and this source lives once built."""
    digest = hashlib.sha256(source().encode()).hexdigest()[:12]
    return cache_dir() / NAME / KUBERNETES_VERSION / f"{NAME}-{digest}"


def resolve(*, allow_build: bool, progress: gobuild.ProgressCallback | None = None) -> Path:
    """The evaluator's path, built first when missing and ``allow_build``.

    :raises LabError: it is missing and may not be built, or the build failed.
    """
    path = evaluator_path()
    if path.is_file():
        return path
    if not allow_build:
        from webhook_dev.errors import LabError

        raise LabError(
            f"the policy evaluator is not built yet ({path})",
            hint="run `webhook-dev lab build`",
        )
    work_dir = cache_dir() / NAME / "build" / KUBERNETES_VERSION
    return gobuild.build_program(NAME, source(), path, work_dir, progress or (lambda _tick: None))
