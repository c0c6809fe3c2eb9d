"""Webhooks in any language: ``serve --upstream URL --run CMD`` with real Go and Node servers.

The examples in ``tests/go_webhook`` and ``tests/node_webhook`` are copied into a
temporary project and edited as a user would, while clients call without pause.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Served, run_webhook_dev
from tests.polling import wait_until
from tests.process.test_serve_reload import _alive
from tests.reviews import request_review
from tests.upstream_fixtures import LanguageProject, call_under_load, free_port, pid_in
from webhook_dev.tls import certs

BUILD = "go build -o bin/webhook ."


def go_serve(
    serve: Callable[..., Served], project: LanguageProject, env: dict[str, str], *extra: str
) -> Served:
    """``serve --upstream --build --run`` of the Go example, once its first build serves."""
    served = serve(
        "--upstream", project.url,
        "--build", BUILD,
        "--run", f"bin/webhook --port {project.port}",
        "--port", "0", "--no-record", *extra,
        cwd=project.path, env=env,
    )  # fmt: skip
    served.wait_for(r"generation 1 ready", timeout=300)
    return served


def version_of(served: Served) -> str:
    warnings: list[str] = served.review(request_review())["response"]["warnings"]
    return warnings[0]


def edit_versions(served: Served, project: LanguageProject, versions: range) -> Callable[[], None]:
    def edit() -> None:
        for version in versions:
            project.set_version(f"v{version}")
            served.wait_for(rf"generation {version} ready", timeout=300)
            time.sleep(0.3)

    return edit


def serve_example(
    language: str, serve: Callable[..., Served], request: pytest.FixtureRequest
) -> tuple[Served, LanguageProject]:
    """``serve`` in front of the Go example (built with ``--build``) or the Node one.

    The fixtures are asked for here, so the Node case needs no Go toolchain.
    """
    if language == "go":
        project: LanguageProject = request.getfixturevalue("go_project")
        return go_serve(serve, project, request.getfixturevalue("go_toolchain")), project
    project = request.getfixturevalue("node_project")
    served = serve(
        "--upstream", project.url, "--run", f"node server.js --port {project.port}",
        "--port", "0", "--no-record", cwd=project.path,
    )  # fmt: skip
    return served, project


@pytest.mark.parametrize("language", ["go", "node"])
def test_editing_the_webhook_under_load_fails_no_call_and_the_new_code_answers(
    language: str, serve: Callable[..., Served], request: pytest.FixtureRequest
) -> None:
    served, project = serve_example(language, serve, request)
    assert version_of(served) == "v1"
    result = asyncio.run(
        call_under_load(
            served.url, served.tls_context(), edit_versions(served, project, range(2, 5))
        )
    )
    assert result.failures == []
    assert len(result.statuses) > 3
    assert set(result.versions) >= {"v1", "v4"}
    assert version_of(served) == "v4"
    served.wait_for(rf"reloading: changed {re.escape(project.version_file.name)}")


def test_go_run_without_build_restarts_and_holds_calls_until_the_new_process_listens(
    serve: Callable[..., Served], go_project: LanguageProject, go_toolchain: dict[str, str]
) -> None:
    served = serve(
        "--upstream", go_project.url, "--run", f"go run . --port {go_project.port}",
        "--port", "0", "--no-record", cwd=go_project.path, env=go_toolchain,
    )  # fmt: skip
    result = asyncio.run(
        call_under_load(
            served.url, served.tls_context(), edit_versions(served, go_project, range(2, 4))
        )
    )
    assert result.failures == []
    assert version_of(served) == "v3"


def test_a_go_build_error_keeps_the_old_process_serving_and_shows_the_compiler_output(
    serve: Callable[..., Served], go_project: LanguageProject, go_toolchain: dict[str, str]
) -> None:
    served = go_serve(serve, go_project, go_toolchain)
    go_project.write("broken.go", "package main\n\nfunc broken( {\n")
    served.wait_for(r"failed to start; generation 1 keeps serving", timeout=300)
    served.wait_for(r"broken\.go:3:\d+: syntax error")
    assert version_of(served) == "v1"
    (go_project.path / "broken.go").unlink()
    go_project.set_version("v3")
    served.wait_for(r"ready", after=len(served.lines), timeout=300)
    wait_until(
        lambda: version_of(served) == "v3",
        timeout=300,
        interval=0.2,
        what="the rebuilt v3 answers",
        details=lambda: served.output,
    )


def test_a_compile_error_without_build_says_the_old_process_is_gone_and_answers_503(
    serve: Callable[..., Served], go_project: LanguageProject, go_toolchain: dict[str, str]
) -> None:
    served = serve(
        "--upstream", go_project.url, "--run", f"go run . --port {go_project.port}",
        "--port", "0", "--no-record", cwd=go_project.path, env=go_toolchain,
    )  # fmt: skip
    served.wait_for(r"generation 1 ready", timeout=300)
    go_project.write("broken.go", "package main\n\nfunc broken( {\n")
    served.wait_for(r"no generation is serving", timeout=300)
    # The explanation is printed under that line, as part of the error.
    served.wait_for(r"the old process is already stopped; --build CMD keeps it serving")
    status, body = served.call(request_review(), path="/mutate?timeout=2s")
    assert status == 503
    assert b"is not serving " + go_project.url.encode() in body


def test_a_command_that_never_listens_answers_each_call_503_within_its_timeout(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    port = free_port()
    served = serve(
        "--upstream", f"http://127.0.0.1:{port}", "--run", "sleep 600",
        "--port", "0", "--no-record", cwd=tmp_path,
    )  # fmt: skip
    for _ in range(2):
        status, body = served.call(request_review(), path="/mutate?timeout=2s")
        assert status == 503, body
        assert f"`sleep 600` is not serving http://127.0.0.1:{port}".encode() in body


def test_an_upstream_nobody_runs_answers_503_naming_the_url(
    serve: Callable[..., Served], tmp_path: Path
) -> None:
    port = free_port()
    served = serve(
        "--upstream", f"http://127.0.0.1:{port}", "--port", "0", "--no-record", cwd=tmp_path
    )
    status, body = served.call(request_review(), path="/mutate?timeout=2s")
    assert status == 503
    assert f"nothing accepted connections at http://127.0.0.1:{port}".encode() in body


def test_killing_serve_leaves_no_go_server_behind(
    serve: Callable[..., Served], go_project: LanguageProject, go_toolchain: dict[str, str]
) -> None:
    served = serve(
        "--upstream", go_project.url, "--run", f"go run . --port {go_project.port}",
        "--port", "0", "--no-record", cwd=go_project.path, env=go_toolchain,
    )  # fmt: skip
    served.wait_for(r"generation 1 ready", timeout=300)
    go_server = pid_in(served.wait_for(r"listening on"))  # the binary `go run` started
    served.stop(signal.SIGKILL)
    wait_until(
        lambda: not _alive(go_server), timeout=60, what=f"Go server {go_server} is gone with serve"
    )


def test_https_upstream_with_its_own_ca_is_recorded_and_replays_with_url_and_cacert(
    serve: Callable[..., Served],
    go_project: LanguageProject,
    go_toolchain: dict[str, str],
    tmp_path: Path,
) -> None:
    ca = certs.new_ca("my-webhook-ca")
    issued = certs.new_serving_cert(ca, dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "tls.crt").write_bytes(issued.cert_pem)
    (tmp_path / "tls.key").write_bytes(issued.key_pem)
    recording = tmp_path / "rec.jsonl"
    https_url = f"https://localhost:{go_project.port}"
    served = serve(
        "--upstream", https_url, "--upstream-ca", str(tmp_path / "ca.crt"),
        "--build", BUILD,
        "--run", f"bin/webhook --port {go_project.port} --cert {tmp_path}/tls.crt "
                 f"--key {tmp_path}/tls.key",
        "--port", "0", "--record", str(recording), cwd=go_project.path, env=go_toolchain,
    )  # fmt: skip
    answer = served.review(request_review())
    assert answer["response"]["warnings"] == ["v1"]
    served.wait_for(r"Pod default/web-0  CREATE  allowed  1 op")
    served.stop()
    exchange = json.loads(recording.read_text().splitlines()[-1])
    assert exchange["response"]["response"]["patchType"] == "JSONPatch"

    # the same https server, run by hand now, answers the recording the same way
    env = dict(os.environ, **go_toolchain)
    process = _start(go_project, tmp_path, env)
    try:
        replayed = run_webhook_dev(
            "replay", str(recording), "--url", https_url, "--cacert", str(tmp_path / "ca.crt")
        )
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert "1 passed, 0 failed" in replayed.stdout
        untrusted = run_webhook_dev("replay", str(recording), "--url", https_url)
        assert untrusted.returncode == 1
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stdout + untrusted.stderr
    finally:
        process.terminate()
        process.wait(timeout=30)


def _start(project: LanguageProject, tls_dir: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [str(project.path / "bin" / "webhook"), "--port", str(project.port),
         "--cert", str(tls_dir / "tls.crt"), "--key", str(tls_dir / "tls.key")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert "listening on" in process.stdout.readline()
    return process


def test_serve_refuses_app_and_upstream_together_and_run_without_upstream(tmp_path: Path) -> None:
    both = run_webhook_dev("serve", "hook", "--upstream", "http://127.0.0.1:1", cwd=tmp_path)
    assert both.returncode == 2
    assert "either APP (an aiohttp app) or --upstream URL, not both" in both.stderr
    run_only = run_webhook_dev("serve", "--run", "sleep 1", cwd=tmp_path)
    assert run_only.returncode == 2
    assert "give APP" in run_only.stderr or "--run needs --upstream" in run_only.stderr
