"""Options and output shared by the commands that talk to a cluster."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

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
    function = click.option(
        "--webhook",
        metavar="NAME[/ENTRY]",
        help="A Mutating/ValidatingWebhookConfiguration (all its entries, or one).",
    )(function)
    return click.option(
        "--service", metavar="NS/NAME", help="Every webhook entry that calls this Service."
    )(function)
