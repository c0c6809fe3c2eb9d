"""Fixtures for the real parts: a ``webhook-dev serve`` process over real TLS, user projects.

Everything started here is stopped at teardown, even when the test fails.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import textwrap
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import REPO, WEBHOOK_DEV, RunningProcess, stopped_at_exit
from webhook_dev.lab.pytest_plugin import in_ci

pytest_plugins = [
    "tests.lab.redirect_fixtures",
    "tests.upstream_fixtures",
    "tests.browser",
    "tests.direct_fixtures",
]

SERVING = re.compile(r"^serving (https://127\.0\.0\.1:(\d+))$")


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private webhook-dev state directory (its own local CA) for this test."""
    path = tmp_path / "state"
    monkeypatch.setenv("WEBHOOK_DEV_STATE_DIR", str(path))
    return path


class Served(RunningProcess):
    """A running ``webhook-dev serve``: its output, its port, and a verifying TLS client."""

    def __init__(
        self, args: list[str], cwd: Path, state: Path, env: dict[str, str] | None = None
    ) -> None:
        self.args = args
        self.state = state
        super().__init__(
            [*WEBHOOK_DEV, "serve", *args],
            env={**(env or {}), "WEBHOOK_DEV_STATE_DIR": str(state)},
            cwd=cwd,
            name="serve",
        )
        self.url, self.port = "", 0

    def wait_until_serving(self) -> None:
        """Wait for the ``serving https://...`` line and take the port from it."""
        match = SERVING.match(self.wait_for(SERVING.pattern))
        assert match is not None
        self.url, self.port = match.group(1), int(match.group(2))

    def tls_context(self) -> ssl.SSLContext:
        """Verify chain and host name against the local CA, as kube-apiserver does."""
        context = ssl.create_default_context(cafile=str(self.state / "ca" / "ca.crt"))
        assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
        return context

    def call(
        self,
        body: bytes | dict[str, Any] | None,
        *,
        path: str = "/mutate?timeout=30s",
        method: str = "POST",
        host: str = "127.0.0.1",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        payload = json.dumps(body).encode() if isinstance(body, dict) else body
        connection = http.client.HTTPSConnection(
            host, self.port, context=self.tls_context(), timeout=60
        )
        try:
            connection.request(
                method,
                path,
                body=payload,
                headers={"Content-Type": "application/json", **(headers or {})},
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def post_raw(self, path: str, head: bytes, body: bytes) -> tuple[int, bytes]:
        """POST over a fresh TLS connection with ``head`` (header lines, each ending
        CRLF) sent byte for byte: for what http.client would refuse to send."""
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        with raw, self.tls_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
                + head
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
        match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
        assert match, answer[:200]
        return int(match.group(1)), answer.partition(b"\r\n\r\n")[2]

    def review(self, review: dict[str, Any], **options: Any) -> dict[str, Any]:
        status, body = self.call(review, **options)
        assert status == 200, body
        answer: dict[str, Any] = json.loads(body)
        return answer


@pytest.fixture
def serve(state_dir: Path, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start ``webhook-dev serve ARGS...`` in ``cwd`` (default: the repository)."""
    with stopped_at_exit() as processes:

        def start(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> Served:
            served = Served(list(args), cwd, state_dir, env)
            processes.add(served)  # stopped at teardown even if it never serves
            served.wait_until_serving()
            return served

        yield start


def run_webhook_dev(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WEBHOOK_DEV, *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


APP_TEMPLATE = """
from aiohttp import web

VERSION = {version!r}


async def mutate(request):
    review = await request.json()
    {body}
    return web.json_response({{
        "apiVersion": review["apiVersion"],
        "kind": "AdmissionReview",
        "response": {{"uid": review["request"]["uid"], "allowed": True, "warnings": [VERSION]}},
    }})


def create_app():
    app = web.Application()
    app.router.add_post("/mutate", mutate)
    return app
"""


class Project:
    """A user's project directory holding ``hook.py``, an app we edit as a user would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.app_file = path / "hook.py"

    def write_app(self, version: str, body: str = "pass") -> None:
        self.write(APP_TEMPLATE.format(version=version, body=body))

    def write(self, source: str) -> None:
        """Save like an editor: write a temporary file and rename it over the old one."""
        temporary = self.path / ".hook.py.swp"
        temporary.write_text(textwrap.dedent(source))
        os.replace(temporary, self.app_file)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    path = tmp_path / "project"
    path.mkdir()
    project = Project(path)
    project.write_app("v1")
    return project


# --- what each directory needs, and the CI policy ---------------------------------------
# tests/unit: in-process, seconds. tests/process: starts webhook-dev (and Go, Node,
# Chromium) on this machine, no lab. tests/lab: the lab's real control plane (root, netns).
# The marker follows the directory, so `-m "not e2e"` or `-m process` cannot miss a test.
# `e2e` (the lab) is registered by webhook_dev.lab.pytest_plugin, for users' projects too;
# `process` in pyproject.toml.

TESTS = Path(__file__).resolve().parent
MARKER_OF_DIRECTORY = {"lab": pytest.mark.e2e, "process": pytest.mark.process}
MUST_NOT_SKIP_IN_CI = ("e2e", "process")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            directory = item.path.relative_to(TESTS).parts[0]
        except ValueError:
            continue  # a test outside tests/ (a user's, through the plugin)
        marker = MARKER_OF_DIRECTORY.get(directory)
        if marker is not None:
            item.add_marker(marker)


# Under CI=true a lab or process test may not pass by skipping. The lab, browser, Go and
# Node fixtures already fail instead of skipping under CI; this hook also catches skips
# from anywhere else (an importorskip, a skip marker).


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    needed = [name for name in MUST_NOT_SKIP_IN_CI if item.get_closest_marker(name)]
    if in_ci() and report.skipped and needed:
        report.outcome = "failed"
        report.longrepr = f"{needed[0]} test skipped under CI=true: {report.longrepr}"
