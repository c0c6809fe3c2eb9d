"""The ``webhook-dev`` command line.

Each area keeps its commands beside its code (``webhook_dev.lab.cli`` and so on); this
module only assembles the group and turns our typed errors into one line and an exit code.

Exit codes: 0 success; 1 a failure or (for ``replay``) a difference; 2 bad usage or
unreadable input; 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from webhook_dev import __version__
from webhook_dev.errors import WebhookDevError


class _Group(click.Group):
    """A click group that reports :class:`WebhookDevError` as one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WebhookDevError as error:
            if ctx.find_root().params.get("debug"):
                raise
            click.secho(f"error: {error}", fg="red", err=True)
            sys.exit(error.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="webhook-dev")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
def main(debug: bool) -> None:
    """Develop Kubernetes admission webhooks on your workstation, against a real cluster."""


def _register() -> None:
    """Attach every area's commands. Imported lazily so ``--help`` stays fast."""
    from webhook_dev.inspector.cli import inspect
    from webhook_dev.lab.cli import lab
    from webhook_dev.redirect_cli import doctor, down, status, up
    from webhook_dev.replay_cli import replay
    from webhook_dev.serve_cli import serve

    for command in (up, down, status, doctor, lab):
        main.add_command(command)
    main.add_command(serve)
    main.add_command(replay)
    main.add_command(inspect)


_register()
