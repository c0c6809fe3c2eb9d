"""The policy evaluator, driven over a pipe: our Go program that runs kube-apiserver's own
ValidatingAdmissionPolicy and MutatingAdmissionPolicy plugins (its source is
``evaluator/main.go`` beside this module; ``webhook-dev lab build`` builds it with the
Kubernetes release the lab pins).

Why a program and not Python: the issue asks that Kubernetes' code decides — matching,
params, CEL with every library the apiserver offers, ApplyConfiguration merged by each
type's schema, reinvocation, the registry's validation of the policies — and those live
only in Go. One process holds the policies and answers one JSON line for each request
line; calls are pipelined (many lines in flight, answers matched by id), so a process
keeps busy while Python reads the next exchanges.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from webhook_dev.errors import UsageError
from webhook_dev.policy.decision import PolicyDecision, Side

# Past this many bytes waiting for the pipe, a caller waits for the evaluator to read.
_HIGH_WATER = 1 << 20


class PolicyRefused(UsageError):
    """The policies are ones the apiserver would refuse; the message is the apiserver's."""


class EvaluatorFailed(UsageError):
    """The evaluator stopped or answered something that is not its protocol."""


class PolicyEvaluator:
    """One evaluator process holding the policies of ``files``."""

    def __init__(self, process: asyncio.subprocess.Process, policies: Sequence[str]) -> None:
        self._process = process
        self.policies = tuple(policies)
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[PolicyDecision]] = {}
        self._outgoing: list[bytes] = []
        self._sent = asyncio.Event()  # set while the pipe's buffer is below the mark
        self._sent.set()
        self._drainer: asyncio.Future[None] | None = None
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, binary: Path, files: Sequence[Path]) -> PolicyEvaluator:
        """Start it and wait until the policies are loaded.

        :raises PolicyRefused: a policy or binding the apiserver would refuse, with its
            message (every one found, one a line).
        """
        process = await asyncio.create_subprocess_exec(
            str(binary),
            *(str(path) for path in files),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 26,
            # Out of the terminal's process group: Ctrl-C (or up's SIGTERM to its group)
            # must not stop it before the exchanges still held are decided. It ends when
            # its stdin closes, so it never outlives us.
            start_new_session=True,
        )
        assert process.stdout is not None
        first = await process.stdout.readline()
        try:
            hello = orjson.loads(first)
        except orjson.JSONDecodeError:
            assert process.stderr is not None
            detail = (await process.stderr.read()).decode(errors="replace").strip()
            await process.wait()
            raise EvaluatorFailed(
                f"the policy evaluator did not start: {detail or 'no output'}"
            ) from None
        if not hello.get("ok"):
            await process.wait()
            errors = [str(error) for error in hello.get("errors") or []]
            raise PolicyRefused(
                "the apiserver would refuse these policies:\n  " + "\n  ".join(errors),
                hint="fix the policy (the message is kube-apiserver's), then run again",
            )
        return cls(process, hello.get("policies") or [])

    async def decide(
        self,
        review: Mapping[str, Any],
        side: Side,
        *,
        namespace_labels: Mapping[str, str] | None = None,
        control_patch: str | None = None,
        objects: bool = False,
    ) -> PolicyDecision:
        """The policies' decision on ``review`` (an AdmissionReview), as ``side``'s
        plugin makes it. ``namespace_labels``: the request's Namespace as recorded
        (``None``: not recorded). ``control_patch``: the webhook's JSON Patch (base64, as
        answered; ``""``: it answered without one), applied to the request's object and
        returned decoded and defaulted as the apiserver would store it — only when it
        differs from the policies' object, unless ``objects``."""
        number = next(self._ids)
        line: dict[str, Any] = {"id": number, "mode": side, "review": review}
        line["namespace"] = None if namespace_labels is None else {"labels": namespace_labels}
        if control_patch is not None:
            line["controlPatch"] = control_patch
        if objects:
            line["objects"] = True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PolicyDecision] = loop.create_future()
        self._waiting[number] = future
        stdin = self._process.stdin
        assert stdin is not None
        if stdin.is_closing():
            self._waiting.pop(number, None)
            raise EvaluatorFailed("the policy evaluator stopped")
        # Lines are sent together once per turn of the loop: one write (and one wake-up
        # of the evaluator) for every request made meanwhile, not one each.
        self._outgoing.append(orjson.dumps(line))
        if len(self._outgoing) == 1:
            loop.call_soon(self._send)
        if not self._sent.is_set():
            await self._sent.wait()  # the evaluator is behind: let it read first
        return await future

    @property
    def _backlogged(self) -> bool:
        stdin = self._process.stdin
        transport = stdin.transport if stdin is not None else None
        return transport is not None and transport.get_write_buffer_size() > _HIGH_WATER

    def _send(self) -> None:
        lines, self._outgoing = self._outgoing, []
        stdin = self._process.stdin
        if stdin is None or stdin.is_closing():
            return  # the reader fails every waiting decision
        stdin.write(b"\n".join(lines) + b"\n")
        if not self._backlogged:
            self._sent.set()
        else:
            self._sent.clear()
            self._drainer = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        stdin = self._process.stdin
        try:
            if stdin is not None:
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self._sent.set()

    async def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            while line := await stdout.readline():
                answer = orjson.loads(line)
                future = self._waiting.pop(int(answer.get("id") or 0), None)
                if future is not None and not future.done():
                    future.set_result(PolicyDecision.from_json(answer))
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(EvaluatorFailed("the policy evaluator stopped"))
            self._waiting.clear()

    async def close(self) -> None:
        stdin = self._process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 10)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
        self._reader.cancel()
