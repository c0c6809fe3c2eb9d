"""The node's container images, built on this machine from Debian packages (no registry).

There is no registry to pull from, so the lab makes its images and imports them into the
node's containerd at ``lab up``:

* ``webhook-dev.lab/pause`` — the sandbox image: Debian's statically linked ``catatonit``
  in pause mode (``-P``), as podman uses it, instead of Kubernetes' pause binary.
* ``sample-webhooks:dev`` — Python 3, aiohttp and this repository's ``sample_webhook``, the
  name ``sample_webhook/deploy/*.yaml`` use, so those Deployments run as they are.
* ``webhook-dev.lab/nginx:debian`` — Debian's nginx in the foreground, logging to the
  container's output, with no site of its own: the sidecar the sample injects.

The two Debian images share one layer, a ``mmdebstrap --variant=minbase`` root filesystem
with the packages of :data:`BASE_PACKAGES` from the machine's own apt sources. Everything
is cached under ``<cache>/images/`` by a key of its inputs (packages, hooks, the sample's
source, catatonit's binary), and written with fixed timestamps (``SOURCE_DATE_EPOCH``), so
the same inputs give the same image digests. The result is one OCI archive that
``ctr images import`` reads in one go.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from webhook_dev.errors import LabError
from webhook_dev.lab import gobuild
from webhook_dev.lab.gobuild import BuildProgress, ProgressCallback
from webhook_dev.paths import cache_dir

DEBIAN_SUITE = "bookworm"
BASE_PACKAGES = ("python3-aiohttp", "nginx-light")
# Fixed timestamps: reproducible tarballs and image configs.
SOURCE_DATE_EPOCH = 1700000000
CATATONIT = Path("/usr/bin/catatonit")
APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
FORMAT_VERSION = 1  # bump when the layout of what we write changes

PAUSE_IMAGE = "webhook-dev.lab/pause:catatonit"
SAMPLE_IMAGE = "docker.io/library/sample-webhooks:dev"
NGINX_IMAGE = "webhook-dev.lab/nginx:debian"

_MMDEBSTRAP_HOOKS = (
    # Like the official nginx image: no default site, logs to the container's output.
    'rm -f "$1/etc/nginx/sites-enabled/default"',
    'ln -sf /dev/stdout "$1/var/log/nginx/access.log"',
    'ln -sf /dev/stderr "$1/var/log/nginx/error.log"',
    # The samples run as 65532 (as the Dockerfile's USER); give that user a name.
    'echo "nonroot:x:65532:65532::/app:/usr/sbin/nologin" >> "$1/etc/passwd"',
    'echo "nonroot:x:65532:" >> "$1/etc/group"',
)
# Without these the base is ~180 MB: apt's Recommends, and usrmerge (with all of perl)
# where bookworm's usr-is-merged does, once mmdebstrap's hook has merged /usr itself.
_MMDEBSTRAP_OPTIONS = (
    '--aptopt=APT::Install-Recommends "false"',
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
)
_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")

NGINX_DEFAULT_SERVER = b"""server {
    listen 80 default_server;
    location / {
        return 200 "webhook-dev lab nginx\\n";
    }
}
"""

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class ImageSpec:
    """One image: its reference, its layers (keys of :func:`_layers`) and its config."""

    reference: str
    layers: tuple[str, ...]
    entrypoint: tuple[str, ...]
    description: str
    cmd: tuple[str, ...] = ()
    user: str = ""
    working_dir: str = ""
    env: tuple[str, ...] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    labels: dict[str, str] = field(default_factory=dict)


IMAGES: tuple[ImageSpec, ...] = (
    ImageSpec(PAUSE_IMAGE, ("pause",), ("/pause", "-P"), "sandbox (pause): Debian's catatonit"),
    ImageSpec(
        SAMPLE_IMAGE,
        ("debian", "sample"),
        ("python3", "-m", "sample_webhook"),
        "Python 3, aiohttp and sample_webhook (sample_webhook/deploy/*.yaml)",
        user="65532:65532",
        working_dir="/app",
        env=(
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONUNBUFFERED=1",
        ),
    ),
    ImageSpec(
        NGINX_IMAGE,
        ("debian", "nginx"),
        ("nginx", "-g", "daemon off;"),
        "Debian's nginx (the sidecar sample_webhook injects)",
    ),
)


@dataclass(frozen=True)
class BuiltImage:
    reference: str
    digest: str  # of the manifest, as containerd and the kubelet show it
    size: int  # bytes of its layers, uncompressed
    description: str


@dataclass(frozen=True)
class ImageArchive:
    """The OCI archive holding every image, and what is in it."""

    path: Path
    images: tuple[BuiltImage, ...]
    source: str  # "cache" or "built"


def images_cache_dir() -> Path:
    return cache_dir() / "images"


def _sample_sources() -> list[Path]:
    """The sample's modules (shipped with webhook-dev), found without importing them."""
    spec = importlib.util.find_spec("sample_webhook")
    if spec is None or not spec.origin:
        raise LabError("the sample_webhook package is not installed beside webhook-dev")
    return sorted(Path(spec.origin).parent.glob("*.py"))


def _base_key() -> str:
    digest = hashlib.sha256()
    parts = (DEBIAN_SUITE, *BASE_PACKAGES, *_MMDEBSTRAP_OPTIONS, *_MMDEBSTRAP_HOOKS, *_EXCLUDES)
    for part in (*parts, str(FORMAT_VERSION)):
        digest.update(part.encode() + b"\0")
    if APT_SOURCES.exists():
        digest.update(APT_SOURCES.read_bytes())
    return digest.hexdigest()[:16]


def _archive_key(base_key: str) -> str:
    digest = hashlib.sha256(base_key.encode())
    for source in _sample_sources():
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    digest.update(_file_digest(CATATONIT).encode())
    digest.update(json.dumps([spec.__dict__ for spec in IMAGES], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def preflight(*, building: bool = True) -> str | None:
    """Why the images cannot be built (or, cached, be found) here, or None.

    catatonit is needed either way: its binary is one of the inputs the cache is keyed by.
    """
    tools = (("mmdebstrap", "mmdebstrap"),) if building else ()
    for tool, package in (*tools, (str(CATATONIT), "catatonit")):
        if not shutil.which(tool) and not os.access(tool, os.X_OK):
            return f"building the node's images needs {tool} (run dev/setup.sh: {package})"
    return None


def _build_base(dest: Path, progress: ProgressCallback) -> None:
    """``mmdebstrap`` a minbase root filesystem with :data:`BASE_PACKAGES` into ``dest``."""
    partial = dest.with_name(f".{dest.name}.partial")
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        *_MMDEBSTRAP_OPTIONS,
        *(f"--dpkgopt=path-exclude={pattern}" for pattern in _EXCLUDES),
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        *(f"--customize-hook={hook}" for hook in _MMDEBSTRAP_HOOKS),
        "--format=tar",
        DEBIAN_SUITE,
        str(partial),
    ]
    if APT_SOURCES.exists():
        argv.append(str(APT_SOURCES))  # the machine's own mirror (a proxy, a local mirror)
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(SOURCE_DATE_EPOCH))
    gobuild.run_reporting(
        argv,
        dest.parent,
        f"mmdebstrap {DEBIAN_SUITE} ({', '.join(BASE_PACKAGES)})",
        progress,
        env=env,
        hint="mmdebstrap needs Debian's archive (the machine's apt sources) and root; "
        "or start the lab with --no-node",
    )
    os.replace(partial, dest)


def _small_layer(files: Iterable[tuple[str, bytes, int]]) -> bytes:
    """An uncompressed tar layer of (path, content, mode), with its parent directories."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        seen: set[str] = set()
        for path, content, mode in files:
            parts = path.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                directory = "/".join(parts[:depth])
                if directory not in seen:
                    seen.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, SOURCE_DATE_EPOCH
                    archive.addfile(info)
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(content), mode, SOURCE_DATE_EPOCH
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _layers(base_tar: Path) -> dict[str, Path | bytes]:
    sample = [
        (f"app/sample_webhook/{source.name}", source.read_bytes(), 0o644)
        for source in _sample_sources()
    ]
    return {
        "debian": base_tar,
        "sample": _small_layer(sample),
        "pause": _small_layer([("pause", CATATONIT.read_bytes(), 0o755)]),
        # As the official image: a default server on port 80 in conf.d, which a Pod
        # replaces by mounting its own conf.d (the sample's ConfigMap does).
        "nginx": _small_layer([("etc/nginx/conf.d/default.conf", NGINX_DEFAULT_SERVER, 0o644)]),
    }


class _OciWriter:
    """Writes an OCI image layout as a tar, each blob once."""

    def __init__(self, archive: tarfile.TarFile) -> None:
        self._archive = archive
        self._written: set[str] = set()

    def blob(self, content: bytes | Path) -> tuple[str, int]:
        if isinstance(content, Path):
            digest, size = f"sha256:{_file_digest(content)}", content.stat().st_size
        else:
            digest, size = f"sha256:{hashlib.sha256(content).hexdigest()}", len(content)
        if digest not in self._written:
            self._written.add(digest)
            info = tarfile.TarInfo(f"blobs/sha256/{digest.split(':', 1)[1]}")
            info.size, info.mtime, info.mode = size, SOURCE_DATE_EPOCH, 0o644
            if isinstance(content, Path):
                with open(content, "rb") as stream:
                    self._archive.addfile(info, stream)
            else:
                self._archive.addfile(info, io.BytesIO(content))
        return digest, size

    def file(self, name: str, content: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(content), SOURCE_DATE_EPOCH, 0o644
        self._archive.addfile(info, io.BytesIO(content))


def _json(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _write_archive(dest: Path, base_tar: Path, progress: ProgressCallback) -> list[BuiltImage]:
    started = time.monotonic()
    progress(BuildProgress("packing the OCI images", 0.0, 0, ""))
    layers = _layers(base_tar)
    # diff_id == digest for uncompressed layers.
    partial = dest.with_name(f".{dest.name}.partial")
    built: list[BuiltImage] = []
    manifests = []
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(SOURCE_DATE_EPOCH))
    with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as archive:
        writer = _OciWriter(archive)
        for number, spec in enumerate(IMAGES, 1):
            descriptors = [writer.blob(layers[key]) for key in spec.layers]
            config = {
                "architecture": "amd64",
                "os": "linux",
                "created": created,
                "config": {
                    "Entrypoint": list(spec.entrypoint),
                    "Cmd": list(spec.cmd) or None,
                    "Env": list(spec.env),
                    "User": spec.user,
                    "WorkingDir": spec.working_dir,
                    "Labels": {"io.webhook-dev.lab": spec.description, **spec.labels},
                },
                "rootfs": {"type": "layers", "diff_ids": [digest for digest, _ in descriptors]},
                "history": [
                    {"created": created, "created_by": f"webhook-dev lab: {key}"}
                    for key in spec.layers
                ],
            }
            config_digest, config_size = writer.blob(_json(config))
            manifest = {
                "schemaVersion": 2,
                "mediaType": MEDIA_MANIFEST,
                "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size},
                "layers": [
                    {"mediaType": MEDIA_LAYER, "digest": digest, "size": size}
                    for digest, size in descriptors
                ],
            }
            manifest_digest, manifest_size = writer.blob(_json(manifest))
            manifests.append(
                {
                    "mediaType": MEDIA_MANIFEST,
                    "digest": manifest_digest,
                    "size": manifest_size,
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": spec.reference,
                        "org.opencontainers.image.ref.name": spec.reference.rsplit(":", 1)[1],
                    },
                }
            )
            built.append(
                BuiltImage(
                    spec.reference,
                    manifest_digest,
                    sum(size for _, size in descriptors),
                    spec.description,
                )
            )
            progress(
                BuildProgress(
                    "packing the OCI images",
                    time.monotonic() - started,
                    number,
                    spec.reference,
                )
            )
        writer.file("oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
        writer.file("index.json", _json({"schemaVersion": 2, "manifests": manifests}))
    os.replace(partial, dest)
    return built


def _listing(path: Path) -> Path:
    return path.with_suffix(".json")


def resolve(*, allow_build: bool, progress: ProgressCallback | None = None) -> ImageArchive:
    """The archive of the node's images: from the cache, or built now if ``allow_build``."""
    progress = progress or (lambda _tick: None)
    reason = preflight(building=False)
    if reason:
        raise LabError(reason)
    base_key = _base_key()
    archive_dir = images_cache_dir() / _archive_key(base_key)
    archive = archive_dir / "images.oci.tar"
    listing = _listing(archive)
    if archive.exists() and listing.exists():
        found = tuple(BuiltImage(**item) for item in json.loads(listing.read_text()))
        return ImageArchive(archive, found, "cache")
    if not allow_build:
        raise LabError(
            "the node's images are not built yet",
            hint="run `webhook-dev lab build` (a few minutes once), or `lab up --no-node`",
        )
    base_tar = images_cache_dir() / f"debian-{DEBIAN_SUITE}-{base_key}.tar"
    base_tar.parent.mkdir(parents=True, exist_ok=True)
    if not base_tar.exists():
        reason = preflight()
        if reason:
            raise LabError(reason)
        _build_base(base_tar, progress)
    archive_dir.mkdir(parents=True, exist_ok=True)
    built = _write_archive(archive, base_tar, progress)
    listing.write_text(json.dumps([item.__dict__ for item in built], indent=2) + "\n")
    _prune(keep={base_tar, archive_dir})
    return ImageArchive(archive, tuple(built), "built")


def _prune(keep: set[Path]) -> None:
    """Remove archives and base layers of earlier inputs (each is a few hundred MB)."""
    for entry in images_cache_dir().iterdir():
        if entry in keep or entry.name.startswith("."):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(f"debian-{DEBIAN_SUITE}-") and entry.suffix == ".tar":
            entry.unlink(missing_ok=True)


def start_import(ctr: str, socket: Path, archive: Path) -> subprocess.Popen[str]:
    """Begin ``ctr images import`` into the CRI's namespace (``k8s.io``), unpacked for the
    default snapshotter so the first Pod need not wait; finish with :func:`finish_import`.

    It takes seconds (the Debian layer is ~130 MB to store and unpack), so the lab runs it
    while the control plane starts.
    """
    return subprocess.Popen(
        [ctr, "--address", str(socket), "--namespace", "k8s.io", "images", "import", str(archive)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_import(process: subprocess.Popen[str], archive: Path, timeout: float = 300) -> None:
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise LabError(f"importing the node's images took over {timeout:.0f}s") from None
    if process.returncode != 0:
        raise LabError(
            f"importing the node's images into containerd failed: {stderr.strip()}",
            hint=f"the archive is {archive}; delete it to rebuild with `webhook-dev lab build`",
        )
