"""``--policy FILE`` for ``serve`` and ``up``: admission policies deciding each live call
beside the webhook (:mod:`webhook_dev.policy.live`); and the evaluator they and
``replay --policy`` run, built on first use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from webhook_dev.policy.live import LivePolicy


def policy_files_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--policy FILE`` (repeatable, files that exist), passed on as ``policies``."""
    return click.option(
        "--policy",
        "policies",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=help_text,
    )


# serve's and up's: the live comparison.
policy_option = policy_files_option(
    "Also decide each admission call by the Validating/MutatingAdmissionPolicy (and "
    "bindings, params) in this file, with kube-apiserver's own plugins, and show and "
    "record where it differs from the webhook's answer (repeatable)."
)


def policy_evaluator() -> Path:
    """The evaluator, built on first use (progress on stderr)."""
    from webhook_dev.lab import policy_evaluator as evaluator

    path = evaluator.evaluator_path()
    if path.is_file():
        return path
    click.echo("building the policy evaluator (once) ...", err=True)
    return evaluator.resolve(allow_build=True)


def live_policy(policies: tuple[Path, ...]) -> LivePolicy | None:
    """The stage for ``--policy``, or ``None`` without it; start it inside the loop."""
    if not policies:
        return None
    return LivePolicy(policy_evaluator(), policies)
