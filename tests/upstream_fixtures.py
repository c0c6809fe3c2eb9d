"""Fixtures for webhooks in other languages: the Go and Node examples as a user's project.

``tests/go_webhook`` (net/http only) and ``tests/node_webhook`` (Node's http only) need no
network to build. A session fixture warms Go's build cache once, so that each test's
build takes seconds; tests that need a toolchain the machine lacks are skipped, saying so,
and fail under ``CI=true`` (tests/missing.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.missing import unavailable
from tests.reviews import request_review

TESTS = Path(__file__).resolve().parent
GO_CANDIDATES = ("go", "/usr/local/go/bin/go")


def find_go() -> str | None:
    for candidate in GO_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LanguageProject:
    """A copy of an example webhook in a temporary directory, edited as a user would."""

    path: Path
    version_file: Path
    version_template: str
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_version(self, version: str) -> None:
        self.write(self.version_file.name, self.version_template.format(version=version))

    def write(self, name: str, text: str) -> None:
        """Save like an editor: a temporary file renamed over the old one."""
        temporary = self.path / f".{name}.swp"
        temporary.write_text(text)
        temporary.replace(self.path / name)


@pytest.fixture(scope="session")
def go_toolchain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment additions that put Go on PATH; the build cache is warm (needs Go)."""
    go = find_go()
    if go is None:
        unavailable("no Go toolchain on this machine (needed for the Go example webhook)")
    env = {
        "GOTOOLCHAIN": "local",
        "PATH": f"{Path(go).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    warm = tmp_path_factory.mktemp("go-warm")
    subprocess.run(
        [go, "build", "-o", str(warm / "webhook"), "."],
        cwd=TESTS / "go_webhook",
        env=dict(os.environ, **env),
        check=True,
        timeout=600,
        capture_output=True,
    )
    return env


@pytest.fixture
def go_project(tmp_path: Path, go_toolchain: dict[str, str]) -> LanguageProject:
    path = tmp_path / "go-webhook"
    shutil.copytree(TESTS / "go_webhook", path)
    template = (
        "package main\n\n"
        "// Version is what the tests edit: it comes back as the answer's warning "
        "and annotation.\n"
        'const Version = "{version}"\n'
    )
    return LanguageProject(path, path / "version.go", template)


@pytest.fixture
def node_project(tmp_path: Path) -> LanguageProject:
    if shutil.which("node") is None:
        unavailable("no node on this machine (needed for the Node example webhook)")
    path = tmp_path / "node-webhook"
    shutil.copytree(TESTS / "node_webhook", path)
    template = (
        "// What the tests edit: it comes back as the answer's warning and annotation.\n"
        'module.exports = "{version}";\n'
    )
    return LanguageProject(path, path / "version.js", template)


@dataclass
class LoadResult:
    statuses: list[int] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def call_under_load(
    url: str,
    context: object,
    edit: Callable[[], object],
    *,
    clients: int = 4,
) -> LoadResult:
    """Call ``url`` without pause from ``clients`` clients while ``edit()`` (blocking) runs.

    Each call carries ``?timeout=30s``, as an apiserver with ``timeoutSeconds: 30`` would.
    ``edit`` starts once a first call was answered, so the code before the edit is seen
    under load too (on a busy machine the first save could otherwise come first).
    """
    result = LoadResult()
    done = asyncio.Event()
    answered = asyncio.Event()
    body = json.dumps(request_review()).encode()

    async def client(session: aiohttp.ClientSession) -> None:
        while not done.is_set():
            try:
                async with session.post(
                    f"{url}/mutate?timeout=30s",
                    data=body,
                    headers={"Content-Type": "application/json"},
                ) as response:
                    text = await response.text()
            except aiohttp.ClientError as error:
                result.failures.append(repr(error))
                continue
            result.statuses.append(response.status)
            answered.set()
            if response.status == 200:
                result.versions.append(json.loads(text)["response"]["warnings"][0])
            else:
                result.failures.append(f"HTTP {response.status}: {text}")

    connector = aiohttp.TCPConnector(ssl=context)  # type: ignore[arg-type]
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(client(session)) for _ in range(clients)]
        try:
            await asyncio.wait_for(answered.wait(), 60)
            await asyncio.to_thread(edit)
        finally:
            done.set()
            await asyncio.gather(*tasks)
    return result


def pid_in(line: str) -> int:
    match = re.search(r"\(pid (\d+)\)", line)
    assert match is not None, line
    return int(match.group(1))
