"""pytest fixtures for testing admission webhooks against the lab; see docs/lab.md.

Installed with webhook-dev (a ``pytest11`` entry point), so any project can use them:

* ``lab`` (session): a running :class:`~webhook_dev.lab.Lab`. Reuses a lab that is
  already up (``webhook-dev lab up``) and leaves it running; otherwise starts one and
  tears it down at the end of the session, also when tests fail or are interrupted.
* ``lab_api_client`` (session): a ``kubernetes.client.ApiClient`` for the root namespace.
* ``lab_namespace`` (function): a fresh namespace for one test, deleted afterwards.

Without root or ``ip netns`` the fixtures skip with the reason; with ``CI=true`` they fail
instead, so a CI run cannot pass by silently skipping the real thing.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

import pytest

from webhook_dev.errors import LabError
from webhook_dev.lab.lab import Lab, preflight, teardown

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


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A ready lab for the whole session (started here, or reused if already up)."""
    reason = preflight()
    if reason:
        _unavailable(reason)
    try:
        existing = Lab.attach()
    except LabError:
        existing = None
    if existing is not None and existing.healthy():
        yield existing
        return
    if existing is not None:
        teardown()  # a crashed lab's remains; start clean
    try:
        started = Lab.start(allow_build=os.environ.get("WEBHOOK_DEV_LAB_BUILD") == "1")
    except LabError as error:
        _unavailable(str(error))
    try:
        yield started
    finally:
        teardown(started.layout.root)


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
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(lab_api_client)
    name = namespace_name_for(request.node.name)
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
