"""pytest fixtures for testing admission webhooks against the lab; see docs/lab.md.

Installed with webhook-dev (a ``pytest11`` entry point), so any project can use them:

* ``lab`` (session): a running :class:`~webhook_dev.lab.Lab`. Reuses a lab that is
  already up (``webhook-dev lab up``) and leaves it running; otherwise starts one and
  tears it down at the end of the session, also when tests fail or are interrupted.
  It starts without a node unless ``WEBHOOK_DEV_LAB_NODE=1``: with a scheduler and a
  kubelet every Pod a control-plane test creates is scheduled and its image retried, which
  cost more than the second lab ``lab_node`` starts (docs/lab.md has the figures).
* ``lab_node`` (session): a lab with a Ready node, so Pods run and a test can deploy its
  webhook in-cluster (``lab_node.deploy_sample(...)``, or its own manifests with the
  lab's images). It is ``lab`` when that has a node; otherwise a second lab beside it
  (prefix ``<prefix>n``, the /24 eight above, directory ``<dir>-node``), reused if
  already up, else started and torn down at the end of the session.
* ``lab_node_namespace`` (function): a fresh namespace in ``lab_node``'s cluster.
* ``lab_api_client`` (session): a ``kubernetes.client.ApiClient`` for the root namespace.
* ``lab_namespace`` (function): a fresh namespace for one test, deleted afterwards.

Without root or ``ip netns`` the fixtures skip with the reason; with ``CI=true`` they fail
instead, so a CI run cannot pass by silently skipping the real thing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from webhook_dev.errors import LabError
from webhook_dev.lab.lab import Lab, preflight, teardown
from webhook_dev.lab.topology import Topology

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"the lab is required under CI=true: {reason}", pytrace=False)
    pytest.skip(f"lab unavailable: {reason}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: needs root, network namespaces and the lab's real control plane"
    )


def _running_lab() -> Lab | None:
    """A healthy lab started elsewhere (``webhook-dev lab up``), or None.

    Another process may be restarting a component (``set_aggregator_routing``) right now,
    so a lab that looks unhealthy gets a few chances, re-reading its state file each time,
    before its remains are removed to make room for a new one.
    """
    for _ in range(3):
        try:
            existing = Lab.attach()
        except LabError:
            return None  # no state file: nothing running
        try:
            existing.wait_ready(timeout=20)
            return existing
        except LabError:
            time.sleep(1)
    teardown()
    return None


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A ready lab for the whole session (started here, or reused if already up)."""
    reason = preflight()
    if reason:
        _unavailable(reason)
    existing = _running_lab()
    if existing is not None:
        yield existing
        return
    try:
        started = Lab.start(
            allow_build=os.environ.get("WEBHOOK_DEV_LAB_BUILD") == "1",
            with_node=os.environ.get("WEBHOOK_DEV_LAB_NODE") == "1",
        )
    except LabError as error:
        _unavailable(str(error))
    try:
        yield started
    finally:
        teardown(started.layout.root)


def node_lab_topology(main: Topology) -> Topology:
    """Where ``lab_node`` puts its own lab when the session's has no node."""
    network = ipaddress.ip_network(main.subnet)
    above = ipaddress.ip_network(
        (int(network.network_address) + 8 * network.num_addresses, network.prefixlen)
    )
    return Topology(prefix=f"{main.prefix[:7]}n", subnet=str(above))


@pytest.fixture(scope="session")
def lab_node(lab: Lab) -> Iterator[Lab]:
    """A lab whose node is Ready: the session's, or one beside it (see the module doc)."""
    if lab.has_node:
        try:
            lab.wait_node_ready(timeout=30)
        except LabError as error:
            _unavailable(str(error))
        yield lab
        return
    topology = node_lab_topology(lab.topology)
    root = Path(f"{lab.layout.root}-node")
    with contextlib.suppress(LabError):
        existing = Lab.attach(root)
        if existing.has_node and existing.healthy() and existing.node_ready():
            yield existing
            return
    teardown(root, topology)
    try:
        started = Lab.start(
            allow_build=os.environ.get("WEBHOOK_DEV_LAB_BUILD") == "1",
            topology=topology,
            root=root,
            with_node=True,
        )
    except LabError as error:
        _unavailable(str(error))
    try:
        yield started
    finally:
        teardown(root, topology)


@pytest.fixture(scope="session")
def lab_api_client(lab: Lab) -> Iterator[ApiClient]:
    """Admin ``ApiClient`` usable from the test process (root namespace)."""
    client = lab.api_client()
    try:
        yield client
    finally:
        client.close()


def namespace_name_for(test_name: str) -> str:
    """A valid, unique namespace name that still says which test made it."""
    slug = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"t-{slug}-{secrets.token_hex(3)}"


@pytest.fixture
def lab_namespace(lab_api_client: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (with its ``default`` service account, so Pods are admissible)."""
    yield from _fresh_namespace(lab_api_client, request.node.name)


@pytest.fixture
def lab_node_namespace(lab_node: Lab, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace in ``lab_node``'s cluster (where Pods run)."""
    api_client = lab_node.api_client()
    try:
        yield from _fresh_namespace(api_client, request.node.name)
    finally:
        api_client.close()


def _fresh_namespace(lab_api_client: ApiClient, test_name: str) -> Iterator[str]:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(lab_api_client)
    name = namespace_name_for(test_name)
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={"webhook-dev.io/test": "true"})
        )
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                core.read_namespaced_service_account("default", name)
                break
            except ApiException as error:
                if error.status != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except ApiException as error:
            if error.status != 404:
                raise
