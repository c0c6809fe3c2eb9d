"""What every upstream generation does with its child process: pass its output on as events
and report an exit nobody asked for. Shared by the aiohttp workers and ``--run`` commands."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Self

from webhook_dev.admission.exchange import GenerationOutput, Hooks


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
