"""Watch the user's files and ask the upstream for a new generation on each save.

watchfiles groups a burst of writes (an editor's save-as-rename, a formatter) into one
change set, so one save is one reload; saves during a reload coalesce upstream.

Two kinds of write restart nothing. A write that leaves a file's content as it was (a
code generator or formatter with nothing to change): a :class:`ContentBaseline` digest of
every watched file tells. And a write made while the upstream's own command starts
(``make run`` regenerating code before it listens), told by the file's modification time:
``own_writes`` names that command, and such changes only move the baseline, with one
console line naming the files, so a real save in that moment is visible and a second save
reloads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import watchfiles

from webhook_dev.reviews.exchange import ChangesPassedOver, Hooks
from webhook_dev.serving.source_watch import ContentBaseline
from webhook_dev.serving.upstream import Upstream


class Reloader:
    """Watches ``paths`` (Python files by default) and calls ``upstream.request_reload``.

    :param own_writes: given a file's modification time, the upstream's command if it was
        starting then (the write is its own output, not a save), else ``None``.
    """

    def __init__(
        self,
        upstream: Upstream,
        paths: Sequence[Path],
        *,
        watch_filter: watchfiles.BaseFilter | None = None,
        own_writes: Callable[[float], str | None] | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.upstream = upstream
        self.paths = [path.resolve() for path in paths]
        self.watch_filter = watch_filter or watchfiles.PythonFilter()
        self.own_writes = own_writes or (lambda _modified: None)
        self.hooks = hooks or Hooks()
        self.baseline = ContentBaseline()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._primed: asyncio.Task[int] | None = None

    async def start(self) -> None:
        self._primed = asyncio.create_task(
            asyncio.to_thread(self.baseline.prime, self.paths, self.watch_filter)
        )
        self._task = asyncio.create_task(self._run())
        # awatch sets up its inotify watches in its first step; let it take that step, so
        # that a save right after start() is seen.
        for _ in range(3):
            await asyncio.sleep(0)

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        if self._primed is not None:
            await self._primed

    async def _run(self) -> None:
        changes_seen = watchfiles.awatch(
            *self.paths,
            watch_filter=self.watch_filter,
            stop_event=self._stop,
            debounce=400,
            step=20,
        )
        async for changes in changes_seen:
            if self._primed is not None:
                await self._primed  # a file's first event compares with its content at start
            changed = self.baseline.take(sorted({Path(path) for _, path in changes}))
            if not changed:
                continue
            commands = {path: self.own_writes(_modified(path)) for path in changed}
            saved = [path for path, command in commands.items() if command is None]
            own = [path for path, command in commands.items() if command is not None]
            if own:
                command = commands[own[0]]
                assert command is not None
                self.hooks.event(ChangesPassedOver(self._shown(own), command))
            if saved:
                self.upstream.request_reload(f"changed {self._shown(saved)}")

    def _shown(self, changed: Sequence[Path]) -> str:
        names = sorted({self._relative(path) for path in changed})
        return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    def _relative(self, path: Path) -> str:
        for root in self.paths:
            if path.is_relative_to(root):
                return str(path.relative_to(root))
        return str(path)


def _modified(path: Path) -> float:
    """When ``path`` was last written; a deleted file counts as changed now."""
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()
