"""Options and output the commands share: cluster and target flags, the local loop's flags
(one :class:`~webhook_dev.serving.spec.ServingSpec` from them), the inspector's."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import click
from rich.console import Console

from webhook_dev.inspector.server import DEFAULT_PORT, InspectorServer
from webhook_dev.recording.writer import DEFAULT_MAX_SIZE
from webhook_dev.redirect.selection import Selection
from webhook_dev.serving.spec import ServingSpec

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def say(text: str) -> None:
    """One line to stderr, never read as rich markup (names may contain brackets)."""
    err_console.print(text, markup=False)


def cluster_options(function: Any) -> Any:
    function = click.option("--context", help="kubeconfig context (default: the current one).")(
        function
    )
    return click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False),
        help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config).",
    )(function)


def target_options(function: Any) -> Any:
    """``--webhook``, ``--service`` and ``--crd``, handed to the command as one ``selection``
    (a :class:`~webhook_dev.redirect.selection.Selection`, checked once; ``None`` when no
    flag was given, which ``down`` allows and ``up``/``doctor`` refuse)."""

    @functools.wraps(function)
    def with_selection(*args: Any, **flags: Any) -> Any:
        webhook, service, crds = flags.pop("webhook"), flags.pop("service"), flags.pop("crds")
        flags["selection"] = (
            Selection.from_flags(webhook, service, crds) if webhook or service or crds else None
        )
        return function(*args, **flags)

    for option in reversed(
        [
            click.option(
                "--webhook",
                metavar="NAME[/ENTRY]",
                help="A Mutating/ValidatingWebhookConfiguration (all its entries, or one).",
            ),
            click.option(
                "--service",
                metavar="NS/NAME",
                help="Every webhook entry and CRD conversion that calls this Service.",
            ),
            click.option(
                "--crd",
                "crds",
                metavar="NAME",
                multiple=True,
                help="A CustomResourceDefinition's conversion webhook (PLURAL.GROUP), also a "
                "url: one; alone or with --webhook/--service. Repeatable.",
            ),
        ]
    ):
        with_selection = option(with_selection)
    return with_selection


class ByteSize(click.ParamType[int, Any]):
    """A size such as ``512M``, ``2G``, ``100k`` or plain bytes; ``0`` means no limit."""

    name = "SIZE"
    _UNITS: ClassVar[dict[str, int]] = {
        "": 1,
        "b": 1,
        "k": 2**10,
        "m": 2**20,
        "g": 2**30,
        "t": 2**40,
    }

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower().removesuffix("ib").removesuffix("b")
        number, unit = (text[:-1], text[-1]) if text[-1:].isalpha() else (text, "")
        try:
            size = int(float(number) * self._UNITS[unit])
        except (KeyError, ValueError):
            self.fail(f"{value!r} is not a size (e.g. 256M, 2G, 0 for no limit)", param, ctx)
        if size < 0:
            self.fail(f"{value!r}: a size cannot be negative", param, ctx)
        return size


def loop_options(function: Any) -> Any:
    """``--record``, ``--no-record``, ``--record-max-size``, ``--watch``, ``--no-reload``
    and ``--show-secrets``."""
    for option in reversed(
        [
            click.option(
                "--record",
                "record",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Append exchanges to this JSON Lines file "
                "[default: a new file in the state directory].",
            ),
            click.option("--no-record", is_flag=True, help="Record nothing."),
            click.option(
                "--record-max-size",
                type=ByteSize(),
                default=DEFAULT_MAX_SIZE,
                help="Start a new part of the recording (NAME.1.jsonl, NAME.2.jsonl...) "
                "when a line would take it past SIZE; a line is never split; 0: no limit "
                f"[default: {DEFAULT_MAX_SIZE // 2**20}M].",
            ),
            click.option(
                "--watch",
                "watch",
                multiple=True,
                help="Reload when Python files under this directory change "
                "[default: the current directory]. With --run: a directory or a glob of files "
                "('*.go', 'cmd/*') [default: source files, not VCS or build dirs]. Repeatable.",
            ),
            click.option("--no-reload", is_flag=True, help="Do not watch files."),
            click.option(
                "--show-secrets",
                is_flag=True,
                help="Record and show Secret data in clear (console, recording and inspector).",
            ),
        ]
    ):
        function = option(function)
    return function


def upstream_options(function: Any) -> Any:
    """``--upstream URL [--run CMD [--build CMD]]``, shared by ``serve`` and ``up``."""
    for option in reversed(
        [
            click.option(
                "--upstream",
                metavar="URL",
                help="Instead of APP, forward to the webhook you run at this http(s) URL "
                "(any language); the call's path is appended.",
            ),
            click.option(
                "--upstream-ca",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="CA (PEM) to verify an https --upstream with [default: the system's].",
            ),
            click.option(
                "--upstream-insecure", is_flag=True, help="Do not verify an https --upstream."
            ),
            click.option(
                "--run",
                "run_command",
                metavar="CMD",
                help="Start CMD (it must listen at --upstream) and restart it on save; "
                "calls wait while it restarts.",
            ),
            click.option(
                "--build",
                "build_command",
                metavar="CMD",
                help="Build with CMD before each (re)start; the old process serves until "
                "a build succeeds.",
            ),
        ]
    ):
        function = option(function)
    return function


def inspector_options(function: F) -> F:
    """``--inspector-port`` and ``--no-inspector``, for ``serve`` and ``up``."""
    function = click.option(
        "--no-inspector", is_flag=True, help="Do not serve the inspector page."
    )(function)
    return click.option(
        "--inspector-port",
        type=int,
        default=None,
        help=f"Port of the inspector page on 127.0.0.1; 0: any free "
        f"[default: {DEFAULT_PORT}, or any free one if taken].",
    )(function)


def inspector_line(server: InspectorServer) -> str:
    """What ``serve`` and ``up`` print: tests and scripts parse it."""
    return f"inspector {server.url}"


def serving_options(function: Any) -> Any:
    """The local loop's flags — :func:`upstream_options`, :func:`loop_options` and
    :func:`inspector_options` — handed to the command as one ``serving``
    :class:`~webhook_dev.serving.spec.ServingSpec`, checked once by ``from_flags``.

    The command declares APP itself (``serve``: an argument; ``up``: ``--app``), above this
    decorator.
    """

    @functools.wraps(function)
    def with_spec(*args: Any, **flags: Any) -> Any:
        flags["serving"] = ServingSpec.from_flags(
            app=flags.pop("app"),
            upstream=flags.pop("upstream"),
            upstream_ca=flags.pop("upstream_ca"),
            upstream_insecure=flags.pop("upstream_insecure"),
            run=flags.pop("run_command"),
            build=flags.pop("build_command"),
            record=flags.pop("record"),
            no_record=flags.pop("no_record"),
            record_max_size=flags.pop("record_max_size"),
            show_secrets=flags.pop("show_secrets"),
            no_reload=flags.pop("no_reload"),
            watch=flags.pop("watch"),
            no_inspector=flags.pop("no_inspector"),
            inspector_port=flags.pop("inspector_port"),
        )
        return function(*args, **flags)

    return upstream_options(loop_options(inspector_options(with_spec)))
