"""Watch the user's files and ask the upstream for a new generation on each save.

watchfiles groups a burst of writes (an editor's save-as-rename, a formatter) into one
change set, so one save is one reload; saves during a reload coalesce upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import watchfiles

from webhook_dev.serving.upstream import Upstream


class Reloader:
    """Watches ``paths`` (Python files by default) and calls ``upstream.request_reload``."""

    def __init__(
        self,
        upstream: Upstream,
        paths: Sequence[Path],
        *,
        watch_filter: watchfiles.BaseFilter | None = None,
    ) -> None:
        self.upstream = upstream
        self.paths = [path.resolve() for path in paths]
        self.watch_filter = watch_filter or watchfiles.PythonFilter()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        # awatch sets up its inotify watches in its first step; let it take that step, so
        # that a save right after start() is seen.
        for _ in range(3):
            await asyncio.sleep(0)

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        changes_seen = watchfiles.awatch(
            *self.paths,
            watch_filter=self.watch_filter,
            stop_event=self._stop,
            debounce=400,
            step=20,
        )
        async for changes in changes_seen:
            names = sorted({self._relative(Path(path)) for _, path in changes})
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            self.upstream.request_reload(f"changed {shown}")

    def _relative(self, path: Path) -> str:
        for root in self.paths:
            if path.is_relative_to(root):
                return str(path.relative_to(root))
        return str(path)
