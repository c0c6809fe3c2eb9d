"""Fixtures for ``up --direct`` on the lab: a routable or NAT-like lab, ``up --direct``.

``routable_lab`` lifts the workstation's NAT-like firewall rule for one test
(``Lab.set_routable``) and puts the lab back as it was (``routable_node_lab`` does it for
the lab with a node); ``nat_lab`` makes sure it is there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import REPO, RunningProcess, stopped_at_exit
from tests.lab.redirect_fixtures import RedirectTarget, up_process
from webhook_dev.lab import Lab

# The Lease is renewed every third of this: status sees the refused count within a second.
FAST_LEASE = {"WEBHOOK_DEV_LEASE_SECONDS": "3"}


def _lab_with_routable(lab: Lab, routable: bool) -> Iterator[Lab]:
    was = lab.state.routable
    lab.set_routable(routable)
    try:
        yield lab
    finally:
        lab.set_routable(was)


@pytest.fixture
def routable_lab(lab: Lab) -> Iterator[Lab]:
    """The lab, with the master allowed to open connections to the workstation."""
    yield from _lab_with_routable(lab, True)


@pytest.fixture
def routable_node_lab(lab_node: Lab) -> Iterator[Lab]:
    """The lab with a node (a second lab unless the first has one), routable likewise:
    for ``--direct`` tests whose webhook or CRD runs on the node's cluster."""
    yield from _lab_with_routable(lab_node, True)


@pytest.fixture
def nat_lab(lab: Lab) -> Iterator[Lab]:
    """The lab as a laptop behind NAT: the master cannot connect to the workstation."""
    yield from _lab_with_routable(lab, False)


@pytest.fixture
def start_direct(lab: Lab, state_dir: Path) -> Iterator[Any]:
    """Start ``up --direct`` processes in the workstation namespace; all stopped at the end."""
    with stopped_at_exit() as processes:

        def start(
            target: RedirectTarget,
            *extra: str,
            env: dict[str, str] | None = None,
            app: str | None = "sample_webhook.sidecar_injector",
            cwd: Path = REPO,
        ) -> RunningProcess:
            argv = [
                "up",
                "--service",
                target.subject,
                "--direct",
                *(["--app", app] if app is not None else []),
                "--no-record",
                *extra,
            ]
            env = {"WEBHOOK_DEV_STATE_DIR": str(state_dir), **(env or {})}
            return processes.add(up_process(lab, argv, env, cwd))

        yield start
