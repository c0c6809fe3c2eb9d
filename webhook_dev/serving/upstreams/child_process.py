"""What every upstream generation does with its child process: pass its output on as events
and report an exit nobody asked for. Shared by the aiohttp workers and ``--run`` commands."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Self

from webhook_dev.reviews.exchange import GenerationOutput, Hooks


class WatchedChild:
    """Mixin: needs ``process``, ``generation``, ``_stopping`` and ``_tasks``."""

    process: asyncio.subprocess.Process
    generation: int
    _stopping: bool
    _tasks: list[asyncio.Task[None]]

    def watch_exit(self, callback: Callable[[Self, int | None], None]) -> None:
        """Call ``callback(self, returncode)`` if the child ends without being stopped."""

        async def wait() -> None:
            returncode = await self.process.wait()
            if not self._stopping:
                callback(self, returncode)

        self._tasks.append(asyncio.create_task(wait()))

    async def _pump_output(self, hooks: Hooks) -> None:
        stream = self.process.stdout
        if stream is None:
            return
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            self._remember_output(text)
            hooks.event(GenerationOutput(self.generation, text))

    def _remember_output(self, text: str) -> None:
        """Override to keep output (e.g. the tail shown when a build fails)."""


async def wait_or_kill(process: asyncio.subprocess.Process, grace: float) -> None:
    """Wait up to ``grace`` seconds for ``process`` to end (it was asked to), then
    SIGKILL it; returns once it is reaped either way."""
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
