"""Which saved files restart a ``--run`` command: source files, not build output.

The default is every file with a source extension under the watched directory, outside
version-control, dependency and build directories — so a ``go build -o bin/webhook`` or
``node_modules`` churn never restarts the server in a loop. ``--watch`` globs replace it:
a glob without ``/`` matches a file name at any depth (``*.go``); one with ``/`` matches
the path relative to the watched directory, where ``*`` also crosses directories
(``cmd/*.go``, ``templates/*``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
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
