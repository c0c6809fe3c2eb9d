"""The ``webhook-dev`` command line.

Each area keeps its commands beside its code (``webhook_dev.commands.lab`` and so on); this
module only assembles the group and turns our typed errors into one line and an exit code.

Exit codes are :class:`webhook_dev.errors.ExitCode`: 0 success; 1 a failure or (for
``replay``) a difference; 2 bad usage or unreadable input; 130 interrupted.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from webhook_dev import __version__
from webhook_dev.errors import WebhookDevError

# Command name → "module:attribute". Modules load only when their command runs (or for
# --help), so `webhook-dev down` does not pay for aiohttp and asyncssh.
COMMANDS = {
    "up": "webhook_dev.commands.up:up",
    "down": "webhook_dev.commands.down:down",
    "status": "webhook_dev.commands.status:status",
    "doctor": "webhook_dev.commands.doctor:doctor",
    "serve": "webhook_dev.commands.serve:serve",
    "replay": "webhook_dev.commands.replay:replay",
    "inspect": "webhook_dev.commands.inspect:inspect",
    "recordings": "webhook_dev.commands.recordings:recordings",
    "demo": "webhook_dev.commands.demo:demo",
    "lab": "webhook_dev.commands.lab:lab",
}


class _Group(click.Group):
    """Loads commands lazily, and reports :class:`WebhookDevError` as one line, not a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attribute = target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command

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
