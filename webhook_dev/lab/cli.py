"""``webhook-dev lab up | exec | status | down``."""

from __future__ import annotations

import click


@click.group()
def lab() -> None:
    """A real control plane (etcd, kube-apiserver, controllers, kube-proxy, sshd) in netns."""
