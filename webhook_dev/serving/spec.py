"""What to serve and how: one spec, validated once, shared by ``serve``, ``up`` and ``demo``.

Like aiohttp-devtools' single ``Config``, a :class:`ServingSpec` holds everything the local
loop needs — what answers (an aiohttp APP, a ``--run`` command at a URL, or a URL alone),
recording, reloading, watching and the inspector — and :meth:`ServingSpec.from_flags` is
the one place that checks flags against each other. The commands fill it from their
flags; :meth:`webhook_dev.serving.stack.ServingStack.from_spec` builds the stack from it.
Where a session serves (127.0.0.1 and a port, or an address ``--direct`` chose) and
with which certificate stay with the caller: they depend on the transport.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from webhook_dev.errors import UsageError
from webhook_dev.paths import state_dir
from webhook_dev.recording.writer import DEFAULT_MAX_SIZE


class Answerer(enum.Enum):
    """Which kind of upstream answers the calls."""

    APP = "app"  # the user's aiohttp app in worker processes
    COMMAND = "command"  # ``--run CMD`` listening at ``--upstream URL``, restarted on save
    URL = "url"  # ``--upstream URL`` alone: a server the user runs and restarts


@dataclass(frozen=True)
class ServingSpec:
    """What to serve, and the local loop's options. Build it with :meth:`from_flags`.

    :param app: ``module[:attr]`` of an aiohttp app, or ``None`` with ``upstream``.
    :param upstream: an http(s) URL to forward to (any language).
    :param run, build: ``--run CMD`` serving ``upstream``; ``--build CMD`` before each start.
    :param record: the recording to append to; ``None`` records nothing.
    :param record_max_size: start a new part of the recording past this many bytes
        (``None``: one file, however large); see :mod:`webhook_dev.recording.writer`.
    :param redact: redact Secret values in the recording (``--show-secrets`` clears it).
    :param reload: restart on save; ``watch`` lists directories (APP) or directories and
        globs (``--run``) to watch instead of the defaults.
    :param inspector: serve the inspector page, on ``inspector_port`` (``None``: default).
    :param retry_lost_calls: a call that may have begun running in a worker that died or
        was replaced for blocking its event loop is sent once more, to the next worker,
        within its deadline. ``serve`` does (a development loop, and admission webhooks
        are to be idempotent: the apiserver may call one again, ``reinvocationPolicy``);
        ``up`` does only when every redirected entry declares ``sideEffects: None``.
    """

    app: str | None = None
    upstream: str | None = None
    upstream_ca: Path | None = None
    upstream_insecure: bool = False
    run: str | None = None
    build: str | None = None
    record: Path | None = None
    record_max_size: int | None = DEFAULT_MAX_SIZE
    redact: bool = True
    reload: bool = True
    watch: tuple[str, ...] = ()
    inspector: bool = True
    inspector_port: int | None = None
    cwd: Path | None = None
    retry_lost_calls: bool = True

    @classmethod
    def from_flags(
        cls,
        *,
        app: str | None,
        upstream: str | None = None,
        upstream_ca: Path | None = None,
        upstream_insecure: bool = False,
        run: str | None = None,
        build: str | None = None,
        record: Path | None = None,
        no_record: bool = False,
        record_max_size: int | None = DEFAULT_MAX_SIZE,
        show_secrets: bool = False,
        no_reload: bool = False,
        watch: Sequence[str] = (),
        no_inspector: bool = False,
        inspector_port: int | None = None,
        cwd: Path | None = None,
    ) -> ServingSpec:
        """The spec the flags describe; a default recording when neither flag names one.

        :raises UsageError: flags that contradict each other, with the fix.
        """
        if record is not None and no_record:
            raise UsageError("--record and --no-record exclude each other")
        if app is not None and upstream is not None:
            raise UsageError("give either APP (an aiohttp app) or --upstream URL, not both")
        if app is None and upstream is None:
            raise UsageError("give APP (an aiohttp app, module[:attr]) or --upstream URL")
        if run is not None and upstream is None:
            raise UsageError("--run needs --upstream URL: the address CMD listens at")
        if build is not None and run is None:
            raise UsageError("--build needs --run: webhook-dev builds what it runs")
        if app is not None:
            for entry in watch:
                if not (cwd or Path.cwd()).joinpath(entry).is_dir():
                    raise UsageError(f"--watch {entry}: not a directory (globs are for --run)")
        spec = cls(
            app=app,
            upstream=upstream,
            upstream_ca=upstream_ca,
            upstream_insecure=upstream_insecure,
            run=run,
            build=build,
            record_max_size=record_max_size or None,
            redact=not show_secrets,
            reload=not no_reload,
            watch=tuple(watch),
            inspector=not no_inspector,
            inspector_port=inspector_port,
            cwd=cwd,
        )
        if no_record:
            return spec
        return spec.recording_to(record or spec.default_recording())

    @property
    def answerer(self) -> Answerer:
        if self.app is not None:
            return Answerer.APP
        return Answerer.URL if self.run is None else Answerer.COMMAND

    @property
    def source(self) -> str:
        """What is served, for people: the APP, or the upstream URL."""
        return self.app or self.upstream or "?"

    @property
    def root(self) -> Path:
        """The project directory: APP is imported and ``--run`` runs from here."""
        return (self.cwd or Path.cwd()).resolve()

    def recording_to(self, record: Path | None) -> ServingSpec:
        return replace(self, record=record)

    def default_recording(self) -> Path:
        """``<state>/recordings/<time>-<name>.jsonl``: one file a session, named after the
        module, or the upstream's port."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return state_dir() / "recordings" / f"{stamp}-{self._recording_name()}.jsonl"

    def _recording_name(self) -> str:
        if self.app is not None:
            return self.app.partition(":")[0]
        port = (self.upstream or "").rstrip("/").rsplit(":", 1)[-1].split("/")[0]
        return f"upstream-{port}" if port.isdigit() else "upstream"
