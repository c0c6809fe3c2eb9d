"""The serving stack: TLS proxy + upstream + reloader + subscribers, as one async object.

``webhook-dev serve`` is a thin wrapper over it, and ``up`` runs it in-process next to the
SSH tunnel::

    async with ServingStack.for_app("sample_webhook.sidecar_injector", port=0,
                                    dns_names=certs.service_dns_names("sidecar", "webhooks"),
                                    record=Path("session.jsonl"),
                                    subscribers=[my_live_view]) as stack:  # on_exchange/on_event
        await tunnel.forward_to("127.0.0.1", stack.port)

Nothing listens beyond 127.0.0.1. Closing it drains and stops the workers; they also exit
on their own if this process dies (see ``webhook_dev.serving.upstreams.app``).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import watchfiles
from aiohttp import web

from webhook_dev.errors import UsageError
from webhook_dev.recording.writer import Recorder
from webhook_dev.reviews.exchange import Event, Exchange, Hooks, Serving
from webhook_dev.reviews.shadow import ShadowSpec
from webhook_dev.serving.fallback import ConversionFallback
from webhook_dev.serving.http_server import KEEPALIVE_TIMEOUT, TimedSockSite, protocol_logger
from webhook_dev.serving.proxy import MAX_BODY, Proxy
from webhook_dev.serving.reloader import Reloader
from webhook_dev.serving.shadow import Shadower
from webhook_dev.serving.source_watch import SourceFilter
from webhook_dev.serving.spec import Answerer, ServingSpec
from webhook_dev.serving.upstream import Upstream
from webhook_dev.serving.upstreams.app import AppUpstream
from webhook_dev.serving.upstreams.command import CommandUpstream
from webhook_dev.serving.upstreams.url import UpstreamUrl, UrlUpstream
from webhook_dev.tls.authority import LocalAuthority

LOCAL_DNS_NAMES = ("localhost",)
LOCAL_IP_ADDRESSES = ("127.0.0.1", "::1")


class Stage(Protocol):
    """A step between the proxy and the subscribers that adds to each exchange before
    anyone sees it — the request Namespace's labels (``up``), a policy's decision
    (``--policy``) — and passes it on, at once or later, in the order it came.

    Stages run after the answer went back, like every subscriber, so none is on the
    answer's path; a stage that holds exchanges (a policy evaluated in another process)
    keeps their order and hands everything on in :meth:`drain` before the recorder
    closes.
    """

    def attach(self, downstream: Hooks) -> None:
        """Where to pass exchanges and events on to (the next stage or the subscribers)."""

    def on_exchange(self, exchange: Exchange) -> None: ...

    def on_event(self, event: Event) -> None: ...

    async def drain(self) -> None:
        """Pass on everything held; called once, as the stack closes."""


class ServingStack:
    """HTTPS on ``host:port`` in front of ``upstream``, publishing every exchange to hooks.

    :param upstream: what answers (see :meth:`for_app` for the user's aiohttp app).
    :param port: 0 picks a free port; read it back from :attr:`port` once entered.
    :param cert_file, key_file: serving certificate; by default one from the local CA for
        ``dns_names`` and ``ip_addresses`` (reissued when they change).
    :param record_max_size: rotate the recording past this size (``None``: never).
    :param record: append exchanges to this JSON Lines file (secrets redacted unless
        ``redact=False``).
    :param watch: directories whose Python files trigger a reload on save.
    :param subscribers: objects with ``on_exchange(exchange)`` / ``on_event(event)``.
    :param stages: :class:`Stage` s every exchange passes through, in order, before the
        recorder and the subscribers get it.
    :raises UsageError: the port is taken, or the certificate files cannot be loaded.
    """

    def __init__(
        self,
        upstream: Upstream,
        *,
        hooks: Hooks | None = None,
        host: str = "127.0.0.1",
        port: int = 8443,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        dns_names: Sequence[str] = LOCAL_DNS_NAMES,
        ip_addresses: Sequence[str] = LOCAL_IP_ADDRESSES,
        record: Path | None = None,
        redact: bool = True,
        record_max_size: int | None = None,
        watch: Sequence[Path] = (),
        subscribers: Iterable[Any] = (),
        max_body: int = MAX_BODY,
        watch_filter: watchfiles.BaseFilter | None = None,
        shadow: ShadowSpec | None = None,
        stages: Sequence[Stage] = (),
    ) -> None:
        self.upstream = upstream
        self.hooks = hooks or Hooks()
        for subscriber in subscribers:
            self.hooks.subscribe(subscriber)
        self.host = host
        self.port = port
        self._cert_file, self._key_file = cert_file, key_file
        self._dns_names, self._ip_addresses = dns_names, ip_addresses
        self._record, self._redact = record, redact
        self._record_max_size = record_max_size
        self._watch = list(watch)
        self._watch_filter = watch_filter
        self._max_body = max_body
        self._stages = list(stages)
        self.recorder: Recorder | None = None
        self._proxy: Proxy | None = None
        # up --shadow: the copy entries' route; the session adds its targets once planned.
        self.shadow = None if shadow is None else Shadower(upstream, self.hooks, shadow)
        self._reloader: Reloader | None = None
        self._runner: web.AppRunner | None = None

    @classmethod
    def from_spec(cls, spec: ServingSpec, **options: Any) -> ServingStack:
        """The stack ``spec`` describes; ``options`` are where and how it listens
        (``port``, ``host``, certificate, ``subscribers``, ``hooks``; see the class).

        The upstream follows :attr:`ServingSpec.answerer`. With ``spec.reload``, an APP
        reloads when Python files under ``spec.watch`` (default: the project directory)
        change; a ``--run`` command restarts when its source files change (``watch``:
        directories or globs, default: the source files under the project directory).

        :raises UsageError: a bad upstream URL or TLS option.
        """
        hooks = options.pop("hooks", None) or Hooks()
        root = spec.root
        upstream: Upstream
        if spec.answerer is Answerer.APP:
            assert spec.app is not None
            upstream = AppUpstream(
                spec.app, cwd=root, hooks=hooks, retry_lost_calls=spec.retry_lost_calls
            )
            if spec.reload:
                options["watch"] = [root / entry for entry in spec.watch] or [root]
        else:
            target = UpstreamUrl.parse(
                spec.upstream or "", ca_file=spec.upstream_ca, insecure=spec.upstream_insecure
            )
            if spec.run is None:
                upstream = UrlUpstream(target)
            else:
                upstream = CommandUpstream(
                    target, spec.run, build=spec.build, cwd=root, hooks=hooks
                )
                if spec.reload:
                    directories = [root / e for e in spec.watch if (root / e).is_dir()]
                    globs = [e for e in spec.watch if not (root / e).is_dir()]
                    options["watch"] = directories or [root]
                    options["watch_filter"] = SourceFilter(root, globs)
        return cls(
            upstream,
            hooks=hooks,
            record=spec.record,
            redact=spec.redact,
            record_max_size=spec.record_max_size,
            **options,
        )

    @classmethod
    def for_app(cls, app: str, **options: Any) -> ServingStack:
        """A stack serving the aiohttp app ``module[:attr]``, reloaded on save, with the
        class's keyword options (``port=0``, ``record=Path(...)``, ``subscribers=[...]``)."""
        record, redact = options.pop("record", None), options.pop("redact", True)
        return cls.from_spec(ServingSpec(app=app, record=record, redact=redact), **options)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    async def start(self) -> None:
        tls = self._tls_context()
        listener = self._listen()
        try:
            if self._record is not None:
                self.recorder = Recorder(
                    self._record,
                    redact=self._redact,
                    max_size=self._record_max_size,
                    hooks=self.hooks,
                )
                self.hooks.subscribe(self.recorder, first=True)
            await self.upstream.start()
            if self._watch:
                own_writes = (
                    self.upstream.wrote_while_starting
                    if isinstance(self.upstream, CommandUpstream)
                    else None
                )
                self._reloader = Reloader(
                    self.upstream,
                    self._watch,
                    watch_filter=self._watch_filter,
                    own_writes=own_writes,
                    hooks=self.hooks,
                )
                await self._reloader.start()
            front = self._front()
            if self.shadow is not None:  # shadowed calls pass the same stages as the rest
                self.shadow.hooks = front
            self._proxy = Proxy(self.upstream, front, max_body=self._max_body, shadow=self.shadow)
            self._runner = web.AppRunner(
                self._proxy.application(),
                access_log=None,
                keepalive_timeout=KEEPALIVE_TIMEOUT,
                logger=protocol_logger(self.hooks),
            )
            await self._runner.setup()
            await TimedSockSite(self._runner, listener, ssl_context=tls).start()
        except BaseException:
            listener.close()
            await self.close()
            raise
        self.hooks.event(Serving(self.url))

    def fall_back_to(self, fallback: ConversionFallback) -> None:
        """From now on, a conversion the upstream cannot answer is answered by ``fallback``
        (the in-cluster backend; serving/fallback.py). Call it once started."""
        assert self._proxy is not None, "start the stack first"
        self._proxy.fallback = fallback

    async def close(self) -> None:
        """Stop accepting, let calls in flight finish, stop workers, flush the recording."""
        if self._reloader is not None:
            await self._reloader.close()
            self._reloader = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.shadow is not None:
            await self.shadow.close()  # comparisons in flight finish while the upstream runs
        if self._proxy is not None:
            self._proxy.flush()  # every answered exchange is published before the recorder closes
        for stage in self._stages:  # in order: what one hands on, the next holds
            await stage.drain()
        await self.upstream.close()
        if self.recorder is not None:
            self.recorder.report_unresolved()
            self.recorder.close()

    def _front(self) -> Hooks:
        """Where the proxy publishes: the first stage, each stage handing on to the next,
        the last to the subscribers (the recorder first)."""
        downstream = self.hooks
        for stage in reversed(self._stages):
            stage.attach(downstream)
            downstream = Hooks([stage])
        return downstream

    async def __aenter__(self) -> ServingStack:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _tls_context(self) -> ssl.SSLContext:
        cert_file, key_file = self._cert_file, self._key_file
        if (cert_file is None) != (key_file is None):
            raise UsageError("give both --cert and --key, or neither")
        if cert_file is None or key_file is None:
            authority = LocalAuthority.load_or_create()
            cert_file, key_file = authority.serving_files(
                "serve" if self._dns_names == LOCAL_DNS_NAMES else self._dns_names[0],
                dns_names=self._dns_names,
                ip_addresses=self._ip_addresses,
            )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as error:
            raise UsageError(
                f"cannot load the serving certificate {cert_file} / {key_file}: {error}"
            ) from error
        return context

    def _listen(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError as error:
            listener.close()
            raise UsageError(
                f"cannot listen on {self.host}:{self.port}: {error.strerror}",
                hint="pick another --port, or --port 0 for any free one",
            ) from error
        listener.listen(512)
        self.port = listener.getsockname()[1]
        return listener
