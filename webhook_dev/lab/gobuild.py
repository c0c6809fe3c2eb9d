"""Build the lab's binaries from Go modules with the machine's Go toolchain.

A cold build of the Kubernetes commands compiles a few thousand packages and takes tens of
minutes on two cores, so every step reports progress through a callback: which binary is
building, how many packages the compiler has finished, and the elapsed time. Each binary
is linked to a temporary name, checked with ``--version`` and only then renamed into
place, so an interrupted build never leaves a half-written binary that looks cached.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from webhook_dev.errors import LabError
from webhook_dev.lab import gomodule
from webhook_dev.lab.pins import ETCD_BINARY, ETCD_VERSION, KUBERNETES_VERSION, Binary


@dataclass(frozen=True)
class BuildProgress:
    """One tick of a build: what is building and how far along it is."""

    step: str
    elapsed_seconds: float
    lines: int  # output lines so far; for a build, packages compiled (go build -v)
    last_line: str
    # Packages the binary depends on (an upper bound for ``lines``), 0 when not a build.
    packages_total: int = 0


ProgressCallback = Callable[[BuildProgress], None]


def find_go() -> Path:
    """The ``go`` command: on PATH, or the official tarball's default location."""
    found = shutil.which("go") or (
        "/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None
    )
    if not found:
        raise LabError(
            "no Go toolchain found to build the lab's Kubernetes binaries",
            hint="install Go from https://go.dev/dl, or pass --assets DIR with prebuilt "
            "binaries (KUBEBUILDER_ASSETS works too)",
        )
    return Path(found)


def go_version(go: Path) -> tuple[int, int, int]:
    """The toolchain's version as a tuple, e.g. (1, 26, 8)."""
    output = subprocess.run(
        [str(go), "env", "GOVERSION"], capture_output=True, text=True, check=True
    ).stdout.strip()
    match = re.match(r"go(\d+)\.(\d+)(?:\.(\d+))?", output)
    if not match:
        raise LabError(f"cannot parse the Go version {output!r}")
    major, minor, patch = match.groups()
    return (int(major), int(minor), int(patch or 0))


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # Static binaries that run anywhere; never let go.mod trigger a toolchain download.
    env.update(CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-mod=mod")
    return env


def _stream(
    argv: list[str],
    cwd: Path,
    step: str,
    progress: ProgressCallback,
    total: int = 0,
    env: dict[str, str] | None = None,
    hint: str = "fix the error above, or pass --assets DIR with prebuilt binaries",
) -> Iterator[str]:
    """Run a go command, yield its output lines, and report progress at least every second.

    The compiler can spend minutes on one big package without printing anything, so a
    reader thread feeds a queue and the loop ticks on a timeout as well as on each line.
    """
    started = time.monotonic()
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env or _go_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def read(stream: IO[str]) -> None:
        for raw in stream:
            lines.put(raw.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, args=(process.stdout,), daemon=True).start()
    tail: list[str] = []
    done = 0
    progress(BuildProgress(step, 0.0, 0, "", total))
    while True:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            last = tail[-1] if tail else ""
            progress(BuildProgress(step, time.monotonic() - started, done, last, total))
            continue
        if line is None:
            break
        tail = [*tail[-40:], line]
        done += 1
        progress(BuildProgress(step, time.monotonic() - started, done, line, total))
        yield line
    if process.wait() != 0:
        raise LabError(
            f"{step} failed (exit {process.returncode}):\n" + "\n".join(tail[-20:]),
            hint=hint,
        )


def _run_quiet(
    argv: list[str], cwd: Path, step: str, progress: ProgressCallback, total: int = 0
) -> None:
    for _ in _stream(argv, cwd, step, progress, total):
        pass


def run_reporting(
    argv: list[str],
    cwd: Path,
    step: str,
    progress: ProgressCallback,
    env: dict[str, str],
    hint: str,
) -> None:
    """Run any long command (``mmdebstrap``) with the same progress ticks as a build."""
    for _ in _stream(argv, cwd, step, progress, env=env, hint=hint):
        pass


def _count_packages(go: Path, work_dir: Path, package: str) -> int:
    """How many packages ``package`` depends on: what a cold build compiles, at most."""
    listed = subprocess.run(
        [str(go), "list", "-deps", package],
        cwd=work_dir,
        env=_go_env(),
        capture_output=True,
        text=True,
    )
    return len(listed.stdout.split()) if listed.returncode == 0 else 0


def _json_objects(text: str) -> Iterator[dict[str, object]]:
    """Split the concatenated JSON objects ``go mod download -json`` prints."""
    decoder = json.JSONDecoder()
    index = 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return
        value, index = decoder.raw_decode(text, index)
        yield value


def _download_go_mod(go: Path, cwd: Path, module_at_version: str) -> str:
    """The go.mod text of one module version, fetched through the module proxy."""
    download = subprocess.run(
        [str(go), "mod", "download", "-json", module_at_version],
        cwd=cwd,
        env=_go_env(),
        capture_output=True,
        text=True,
    )
    found = list(_json_objects(download.stdout)) if download.stdout.strip() else []
    if download.returncode != 0 or not found or "Error" in found[0]:
        detail = found[0].get("Error") if found else download.stderr.strip()
        raise LabError(
            f"cannot download {module_at_version}: {detail}",
            hint="check that the Go module proxy is reachable (GOPROXY), or pass --assets DIR",
        )
    return Path(str(found[0]["GoMod"])).read_text()


def _published(go: Path, cwd: Path, modules: list[str], tag: str) -> list[str]:
    """Those of ``modules`` that exist at ``tag`` on the module proxy (one proxy round)."""
    check = subprocess.run(
        [str(go), "mod", "download", "-json", *(f"{module}@{tag}" for module in modules)],
        cwd=cwd,
        env=_go_env(),
        capture_output=True,
        text=True,
    )
    return [str(entry["Path"]) for entry in _json_objects(check.stdout) if "Error" not in entry]


def _prepare_kubernetes_module(
    go: Path,
    work_dir: Path,
    progress: ProgressCallback,
    binaries: list[Binary],
    *,
    module: str = "webhookdev.local/k8sbuild",
) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    progress(BuildProgress("resolving k8s.io/kubernetes staging modules", 0, 0, ""))
    # Run outside the wrapper so `go mod download` never reads a half-written go.mod.
    kubernetes_go_mod = _download_go_mod(
        go, work_dir.parent, f"k8s.io/kubernetes@v{KUBERNETES_VERSION}"
    )
    required = gomodule.required_go(kubernetes_go_mod)
    available = go_version(go)
    if available < required:
        raise LabError(
            f"Kubernetes v{KUBERNETES_VERSION} needs Go {'.'.join(map(str, required))}, "
            f"this machine has {'.'.join(map(str, available))}",
            hint="install a newer Go, or pass --assets DIR with prebuilt binaries",
        )
    published = _published(
        go,
        work_dir.parent,
        gomodule.staging_modules(kubernetes_go_mod),
        gomodule.staging_version(KUBERNETES_VERSION),
    )
    (work_dir / "go.mod").write_text(
        gomodule.kubernetes_wrapper_go_mod(KUBERNETES_VERSION, published, required, module=module)
    )
    if binaries:
        (work_dir / "tools.go").write_text(gomodule.tools_go([b.package for b in binaries]))
    _run_quiet([str(go), "mod", "tidy"], work_dir, "go mod tidy (Kubernetes)", progress)


def _prepare_etcd_module(go: Path, work_dir: Path, progress: ProgressCallback) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "go.mod").write_text(gomodule.etcd_wrapper_go_mod(ETCD_VERSION))
    (work_dir / "tools.go").write_text(gomodule.tools_go([ETCD_BINARY.package]))
    _run_quiet([str(go), "mod", "tidy"], work_dir, "go mod tidy (etcd)", progress)


def _build_one(
    go: Path,
    work_dir: Path,
    binary: Binary,
    ldflags: str,
    dest_dir: Path,
    progress: ProgressCallback,
) -> Path:
    dest_dir.mkdir(parents=True, exist_ok=True)
    partial = dest_dir / f".{binary.name}.partial"
    argv = [
        str(go),
        "build",
        "-trimpath",
        "-v",
        f"-ldflags={ldflags}",
        "-o",
        str(partial),
        binary.package,
    ]
    total = _count_packages(go, work_dir, binary.package)
    _run_quiet(argv, work_dir, f"building {binary.name}", progress, total)
    verify_version(partial, binary)
    final = dest_dir / binary.name
    os.replace(partial, final)
    return final


def verify_version(path: Path, binary: Binary) -> str:
    """Run ``<binary> --version`` and check it names the pinned release; return its output."""
    try:
        result = subprocess.run(
            [str(path), *binary.version_args], capture_output=True, text=True, timeout=60
        )
    except OSError as error:
        raise LabError(f"{path} does not run: {error}") from error
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0 or binary.version_marker not in output:
        raise LabError(
            f"{path} reports {output.splitlines()[0] if output else 'nothing'!r}, "
            f"expected {binary.version_marker}",
            hint="delete it and run `webhook-dev lab build` again",
        )
    return output


def build(
    binaries: list[Binary], dest_dir: Path, work_root: Path, progress: ProgressCallback
) -> dict[str, Path]:
    """Build ``binaries`` into ``dest_dir``; return name → installed path."""
    go = find_go()
    built: dict[str, Path] = {}
    kubernetes = [b for b in binaries if b is not ETCD_BINARY]
    if any(b is ETCD_BINARY for b in binaries):
        etcd_dir = work_root / f"etcd-{ETCD_VERSION}"
        _prepare_etcd_module(go, etcd_dir, progress)
        built["etcd"] = _build_one(go, etcd_dir, ETCD_BINARY, "-s -w", dest_dir, progress)
    if kubernetes:
        k8s_dir = work_root / f"kubernetes-{KUBERNETES_VERSION}"
        _prepare_kubernetes_module(go, k8s_dir, progress, kubernetes)
        ldflags = gomodule.kubernetes_ldflags(KUBERNETES_VERSION)
        for binary in kubernetes:
            built[binary.name] = _build_one(go, k8s_dir, binary, ldflags, dest_dir, progress)
    return built


def build_program(
    name: str, source: str, dest: Path, work_dir: Path, progress: ProgressCallback
) -> Path:
    """Build a Go program of ours (one ``main.go``) against k8s.io/kubernetes at the
    pinned release, with the same toolchain, module and build caches as the lab's
    binaries (so the packages it shares with them are compiled once), into ``dest``.

    Linked to a temporary name and renamed into place, like the lab's binaries.
    """
    go = find_go()
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "main.go").write_text(source)
    _prepare_kubernetes_module(go, work_dir, progress, [], module=f"webhookdev.local/{name}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.parent / f".{dest.name}.partial"
    argv = [str(go), "build", "-trimpath", "-v", "-ldflags=-s -w", "-o", str(partial), "."]
    total = _count_packages(go, work_dir, ".")
    _run_quiet(argv, work_dir, f"building {name}", progress, total)
    os.replace(partial, dest)
    return dest
