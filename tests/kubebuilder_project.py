"""A kubebuilder project exactly as kubebuilder v4.16.0 scaffolds it, with a few lines at its TODOs.

README's kubebuilder recipes are tested on the real thing, not on a look-alike: kubebuilder
is built from the Go module proxy (``go install sigs.k8s.io/kubebuilder/v4@v4.16.0``), the
project is scaffolded with its own commands (API ``v1``, the hub and storage version, and
``v2``, a spoke; defaulting, validation and conversion webhooks), then the logic below is
put at the scaffold's TODOs and ``make build`` installs controller-gen and builds the
manager. All of it is cached outside the repository, keyed by kubebuilder's version, in
``~/.cache/webhook-dev/kubebuilder/<version>/`` (override: ``WEBHOOK_DEV_KUBEBUILDER_CACHE``),
the way the lab caches its Kubernetes build; each step is written to a ``.partial`` name
and renamed when done, so an interrupted run never leaves a cache that looks complete.

What the logic does, so that a test can see each webhook answer from the local manager:

- defaulting: a Guestbook without ``spec.foo`` gets ``spec.foo: DEFAULT_FOO``;
- validation: ``spec.foo: FORBIDDEN_FOO`` is denied with :data:`DENIAL`;
- conversion: v1 ``spec.foo`` is v2 ``spec.bar`` (the v2 type's field is renamed).

Warm the cache by hand (prints each step's time): ``python -m tests.kubebuilder_project``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

KUBEBUILDER_VERSION = "v4.16.0"
DEFAULT_FOO = "defaulted-by-the-local-manager"
FORBIDDEN_FOO = "forbidden"
DENIAL = 'spec.foo must not be "forbidden" (said the local manager)'
GO_CANDIDATES = ("go", "/usr/local/go/bin/go")
STEP_TIMEOUT = 3600  # a cold `make build` compiles controller-gen and the manager

SCAFFOLD = (
    ["init", "--domain", "example.com", "--repo", "example.com/guestbook"],
    ["create", "api", "--group", "webapp", "--version", "v1", "--kind", "Guestbook",
     "--resource", "--controller"],
    ["create", "api", "--group", "webapp", "--version", "v2", "--kind", "Guestbook",
     "--resource", "--controller=false"],
    ["create", "webhook", "--group", "webapp", "--version", "v1", "--kind", "Guestbook",
     "--defaulting", "--programmatic-validation", "--conversion", "--spoke", "v2"],
)  # fmt: skip

# (file, scaffold text, replacement): each scaffold text must be found exactly once.
LOGIC = (
    (
        "api/v2/guestbook_types.go",
        "\t// foo is an example field of Guestbook. Edit guestbook_types.go to remove/update\n"
        '\t// +optional\n\tFoo *string `json:"foo,omitempty"`\n',
        "\t// bar is v1's spec.foo under its v2 name.\n"
        '\t// +optional\n\tBar *string `json:"bar,omitempty"`\n',
    ),
    (
        "api/v2/guestbook_conversion.go",
        "\t// TODO(user): Implement conversion logic from v2 to v1\n",
        "\tdst.Spec.Foo = src.Spec.Bar\n",
    ),
    (
        "api/v2/guestbook_conversion.go",
        "\t// TODO(user): Implement conversion logic from v1 to v2\n",
        "\tdst.Spec.Bar = src.Spec.Foo\n",
    ),
    (
        "internal/webhook/v1/guestbook_webhook.go",
        'import (\n\t"context"\n',
        'import (\n\t"context"\n\t"fmt"\n',
    ),
    (
        "internal/webhook/v1/guestbook_webhook.go",
        "\t// TODO(user): fill in your defaulting logic.\n",
        f'\tif obj.Spec.Foo == nil {{\n\t\tfoo := "{DEFAULT_FOO}"\n\t\tobj.Spec.Foo = &foo\n\t}}\n',
    ),
    (
        "internal/webhook/v1/guestbook_webhook.go",
        "\t// TODO(user): fill in your validation logic upon object creation.\n",
        f'\tif obj.Spec.Foo != nil && *obj.Spec.Foo == "{FORBIDDEN_FOO}" {{\n'
        f"\t\treturn nil, fmt.Errorf({DENIAL!r})\n\t}}\n".replace("'", "`"),
    ),
)


class KubebuilderUnavailable(Exception):
    """No Go toolchain, or a step failed: the message says which and how to look."""


def cache_root() -> Path:
    configured = os.environ.get("WEBHOOK_DEV_KUBEBUILDER_CACHE")
    base = (
        Path(configured) if configured else Path.home() / ".cache" / "webhook-dev" / "kubebuilder"
    )
    return base / KUBEBUILDER_VERSION


def find_go() -> Path | None:
    for candidate in GO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return Path(found)
    return None


def go_env(go: Path) -> dict[str, str]:
    """The environment kubebuilder's Makefile needs: Go on PATH, no toolchain download."""
    return dict(
        os.environ,
        GOTOOLCHAIN="local",
        PATH=f"{go.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )


def ensure_project(report: Callable[[str], None] = lambda _line: None) -> Path:
    """The built guestbook project in the cache (built first if missing); do not edit it:
    copy it with :func:`copy_project`.

    :raises KubebuilderUnavailable: no Go, or a step failed (its output's tail included).
    """
    go = find_go()
    if go is None:
        raise KubebuilderUnavailable(
            "no Go toolchain on this machine (needed to build kubebuilder "
            f"{KUBEBUILDER_VERSION} and its scaffolded project; install Go from https://go.dev/dl)"
        )
    env = go_env(go)
    root = cache_root()
    kubebuilder = root / "bin" / "kubebuilder"
    if not kubebuilder.exists():
        partial = root / "bin.partial"
        shutil.rmtree(partial, ignore_errors=True)
        _step(
            report,
            "go install kubebuilder",
            [str(go), "install", f"sigs.k8s.io/kubebuilder/v4@{KUBEBUILDER_VERSION}"],
            cwd=root,
            env=dict(env, GOBIN=str(partial)),
        )
        partial.replace(root / "bin")
    project = root / "guestbook"
    if not (project / "bin" / "manager").exists():
        # kubebuilder names the project after its directory: build in partial/guestbook
        partial = root / "guestbook.partial"
        shutil.rmtree(partial, ignore_errors=True)
        building = partial / "guestbook"
        for arguments in SCAFFOLD:
            _step(report, f"kubebuilder {' '.join(arguments[:2])}", [str(kubebuilder), *arguments],
                  cwd=building, env=env)  # fmt: skip
        add_logic(building)
        _step(report, "make build", ["make", "build"], cwd=building, env=env)
        _step(report, "make kustomize", ["make", "kustomize"], cwd=building, env=env)
        shutil.rmtree(project, ignore_errors=True)
        building.replace(project)
        shutil.rmtree(partial, ignore_errors=True)
    return project


def add_logic(project: Path) -> None:
    """Put :data:`LOGIC` at the scaffold's TODOs; a scaffold that changed is an error."""
    for name, scaffold, replacement in LOGIC:
        path = project / name
        text = path.read_text()
        if text.count(scaffold) != 1:
            raise KubebuilderUnavailable(
                f"kubebuilder {KUBEBUILDER_VERSION}'s {name} no longer holds {scaffold!r} "
                "exactly once: update LOGIC in tests/kubebuilder_project.py"
            )
        path.write_text(text.replace(scaffold, replacement))


def copy_project(destination: Path) -> Path:
    """A copy of the cached project for one test (its bin/ tools and manager included).

    The Makefile links ``bin/controller-gen`` to ``bin/controller-gen-v0.22.0`` by absolute
    path and reinstalls the tool when the link points elsewhere: the copy's links are
    pointed at the copy's own tools, as ``make`` itself would have made them there.
    """
    shutil.copytree(ensure_project(), destination, symlinks=True)
    for link in (destination / "bin").iterdir():
        if link.is_symlink():
            target = destination / "bin" / Path(os.readlink(link)).name
            link.unlink()
            link.symlink_to(target)
    return destination


def _step(
    report: Callable[[str], None], what: str, argv: list[str], *, cwd: Path, env: dict[str, str]
) -> None:
    cwd.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT
        )
    except subprocess.TimeoutExpired as error:
        raise KubebuilderUnavailable(f"`{' '.join(argv)}` took over {STEP_TIMEOUT} s") from error
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
        raise KubebuilderUnavailable(
            f"`{' '.join(argv)}` failed ({done.returncode}) in {cwd}:\n{tail}"
        )
    report(f"{what}: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    began = time.monotonic()
    try:
        path = ensure_project(lambda line: print(line, flush=True))
    except KubebuilderUnavailable as error:
        sys.exit(f"error: {error}")
    print(f"{path} ready in {time.monotonic() - began:.0f} s")
