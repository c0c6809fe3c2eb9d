"""Fixtures for the real parts: a ``webhook-dev serve`` process over real TLS, user projects.

Everything started here is stopped at teardown, even when the test fails.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from webhook_dev.lab.pytest_plugin import in_ci

pytest_plugins = [
    "tests.redirect_fixtures",
    "tests.upstream_fixtures",
    "tests.browser",
    "tests.direct_fixtures",
]

REPO = Path(__file__).resolve().parents[1]
WEBHOOK_DEV = [sys.executable, "-m", "webhook_dev"]
STARTUP_TIMEOUT = 90.0  # a loaded 2-core machine can be slow to import aiohttp twice
SERVING = re.compile(r"^serving (https://127\.0\.0\.1:(\d+))$")


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private webhook-dev state directory (its own local CA) for this test."""
    path = tmp_path / "state"
    monkeypatch.setenv("WEBHOOK_DEV_STATE_DIR", str(path))
    return path


class Served:
    """A running ``webhook-dev serve``: its output, its port, and a verifying TLS client."""

    def __init__(
        self, args: list[str], cwd: Path, state: Path, env: dict[str, str] | None = None
    ) -> None:
        self.args = args
        self.state = state
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [*WEBHOOK_DEV, "serve", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(
                os.environ, **(env or {}), WEBHOOK_DEV_STATE_DIR=str(state), PYTHONUNBUFFERED="1"
            ),
        )
        threading.Thread(target=self._read, daemon=True).start()
        match = SERVING.match(self.wait_for(SERVING.pattern))
        assert match is not None
        self.url, self.port = match.group(1), int(match.group(2))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, *, after: int = 0, timeout: float = STARTUP_TIMEOUT) -> str:
        """The first output line (from index ``after``) matching ``pattern``."""
        compiled = re.compile(pattern)
        until = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[after:]:
                    if compiled.search(line):
                        return line
                if self.process.poll() is not None and not self._more_output_possible():
                    raise AssertionError(
                        f"serve exited; no line matched {pattern!r}:\n{self.output}"
                    )
                remaining = until - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no line matched {pattern!r} in:\n{self.output}")
                self._changed.wait(min(remaining, 0.5))

    def _more_output_possible(self) -> bool:
        return self.process.stdout is not None and not self.process.stdout.closed

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

    def review(self, review: dict[str, Any], **options: Any) -> dict[str, Any]:
        status, body = self.call(review, **options)
        assert status == 200, body
        answer: dict[str, Any] = json.loads(body)
        return answer

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def serve(state_dir: Path, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start ``webhook-dev serve ARGS...`` in ``cwd`` (default: the repository)."""
    started: list[Served] = []

    def start(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> Served:
        served = Served(list(args), cwd, state_dir, env)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


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


# --- project-wide policy: under CI=true an end-to-end test may not pass by skipping -------
# The lab fixtures already fail instead of skipping under CI; this hook also catches skips
# from anywhere else (an importorskip, a skip marker) on tests marked ``e2e``.


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and item.get_closest_marker("e2e"):
        report.outcome = "failed"
        report.longrepr = f"e2e test skipped under CI=true: {report.longrepr}"
