"""Which saved files restart a ``--run`` command: source files, not build output.

The default is every file with a source extension under the watched directory, outside
version-control, dependency and build directories — so a ``go build -o bin/webhook`` or
``node_modules`` churn never restarts the server in a loop. ``--watch`` globs replace it:
a glob without ``/`` matches a file name at any depth (``*.go``); one with ``/`` matches
the path relative to the watched directory, where ``*`` also crosses directories
(``cmd/*.go``, ``templates/*``).

A save is a change of content, not an event: :class:`ContentBaseline` keeps a digest of
each watched file, so a tool that rewrites a file with the bytes it already held (``make
generate`` rewriting ``zz_generated.deepcopy.go``, a formatter with nothing to do, ``git
checkout`` of the same tree) restarts nothing.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import watchfiles

SOURCE_SUFFIXES = frozenset(
    {
        ".go", ".mod", ".sum",  # Go
        ".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".json",  # Node
        ".py", ".rs", ".java", ".kt", ".kts", ".scala", ".rb", ".cs", ".fs",
        ".c", ".cc", ".cpp", ".h", ".hpp", ".zig", ".ex", ".exs", ".php",
        ".toml", ".yaml", ".yml", ".tmpl", ".tpl",
    }
)  # fmt: skip
IGNORED_DIRS = frozenset(
    {"bin", "build", "dist", "out", "target", "vendor", "node_modules", "testdata"}
)


class SourceFilter(watchfiles.DefaultFilter):
    """watchfiles' default ignores (``.git``, ``__pycache__``, editor swap files, ...) plus ours."""

    def __init__(self, root: Path, globs: Sequence[str] = ()) -> None:
        # our build directories count only below ``root``: the project itself may well
        # live in a directory named ``build`` or ``src/out``
        super().__init__()
        self.root = root.resolve()
        self.globs = tuple(globs)

    def __call__(self, change: watchfiles.Change, path: str) -> bool:
        if not super().__call__(change, path):
            return False
        return self.matches(Path(path))

    def descends(self, directory: Path) -> bool:
        """Can a file under ``directory`` match? Lets a walk skip ``bin/`` and ``.git/``."""
        if not watchfiles.DefaultFilter.__call__(self, watchfiles.Change.added, str(directory)):
            return False
        if self.globs:
            return True
        try:
            relative = directory.resolve().relative_to(self.root)
        except ValueError:
            return True
        return not any(part in IGNORED_DIRS for part in relative.parts)

    def matches(self, path: Path) -> bool:
        try:
            relative = path.resolve().relative_to(self.root)
        except ValueError:
            relative = path
        if self.globs:
            return any(_glob_matches(glob, relative) for glob in self.globs)
        if any(part in IGNORED_DIRS for part in relative.parts[:-1]):
            return False
        return path.suffix in SOURCE_SUFFIXES


def _glob_matches(glob: str, relative: Path) -> bool:
    if "/" not in glob:
        return fnmatch.fnmatchcase(relative.name, glob)
    return fnmatch.fnmatchcase(relative.as_posix(), glob.removeprefix("./"))


# A digest is taken of every watched file at start; past these, files are not digested up
# front and their first event counts as a change (the behaviour before baselines existed).
BASELINE_MAX_FILES = 20_000
BASELINE_MAX_FILE_BYTES = 4 * 1024 * 1024


class ContentBaseline:
    """The content each watched file had when last seen, as a digest.

    :meth:`prime` reads every watched file once (a source tree: milliseconds to a second,
    run in a thread); :meth:`take` is then given the paths of each change set and returns
    only those whose bytes differ — a new file, a deleted one, or a real edit.
    """

    def __init__(self) -> None:
        self._digests: dict[Path, bytes | None] = {}  # None: cannot tell (unreadable)

    def prime(self, roots: Iterable[Path], watch_filter: watchfiles.BaseFilter) -> int:
        """Digest the files ``watch_filter`` lets through under ``roots``; returns how many.

        Never overwrites a digest :meth:`take` already set: that one is newer.
        """
        primed = 0
        for path in _watched_files(roots, watch_filter):
            if primed >= BASELINE_MAX_FILES:
                break
            self._digests.setdefault(path, _digest(path))
            primed += 1
        return primed

    def take(self, paths: Iterable[Path]) -> list[Path]:
        """Record the current content of ``paths``; return those whose content changed.

        A file never seen counts as having been absent: it changed if it exists now.
        """
        changed = []
        for path in paths:
            before = self._digests.get(path, _GONE)
            now = _digest(path)
            if now == _GONE:
                self._digests.pop(path, None)
            else:
                self._digests[path] = now
            if now is None or before is None or before != now:
                changed.append(path)
        return changed


_GONE = b""  # the "digest" of a file that does not exist; a real digest is never empty


def _digest(path: Path) -> bytes | None:
    """The content's digest, ``_GONE`` for no file, ``None`` when unreadable or too big."""
    try:
        if path.stat().st_size > BASELINE_MAX_FILE_BYTES:
            return None
        return hashlib.blake2b(path.read_bytes(), digest_size=16).digest()
    except FileNotFoundError:
        return _GONE
    except OSError:
        return None


def _watched_files(roots: Iterable[Path], watch_filter: watchfiles.BaseFilter) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            if watch_filter(watchfiles.Change.modified, str(root)):
                yield root
            continue
        for directory, subdirectories, files in os.walk(root):
            here = Path(directory)
            subdirectories[:] = [
                name for name in subdirectories if _descends(watch_filter, here / name)
            ]
            for name in files:
                if watch_filter(watchfiles.Change.modified, str(here / name)):
                    yield here / name


def _descends(watch_filter: watchfiles.BaseFilter, directory: Path) -> bool:
    if isinstance(watch_filter, SourceFilter):
        return watch_filter.descends(directory)
    if isinstance(watch_filter, watchfiles.DefaultFilter):
        # not ``watch_filter(...)``: PythonFilter's own check wants a ``.py`` name
        return watchfiles.DefaultFilter.__call__(
            watch_filter, watchfiles.Change.added, str(directory)
        )
    return True
