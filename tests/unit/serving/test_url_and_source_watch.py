"""Parsing ``--upstream`` and choosing which saves restart ``--run`` (pure, no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook_dev.errors import UsageError
from webhook_dev.serving.source_watch import SourceFilter
from webhook_dev.serving.upstreams.url import UpstreamUrl


def test_the_calls_path_is_appended_to_the_upstream_url() -> None:
    upstream = UpstreamUrl.parse("https://localhost:9443")
    assert upstream.target("/mutate?timeout=10s") == "https://localhost:9443/mutate?timeout=10s"
    prefixed = UpstreamUrl.parse("http://127.0.0.1:8080/hooks/")
    assert prefixed.target("/mutate") == "http://127.0.0.1:8080/hooks/mutate"
    assert UpstreamUrl.parse("http://[::1]:9/").target("/v") == "http://[::1]:9/v"


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("127.0.0.1:9443", {}, "is not an http:// or https:// URL"),
        ("http://127.0.0.1:9443", {"insecure": True}, "are for https:// upstreams"),
        ("https://h:1", {"insecure": True, "ca_file": Path("ca")}, "exclude each other"),
        ("http://h:1/mutate?x=1", {}, "give no query"),
    ],
)
def test_a_bad_upstream_is_a_usage_error_that_says_why(
    url: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        UpstreamUrl.parse(url, **options)  # type: ignore[arg-type]


def test_default_watch_takes_source_files_but_not_build_output(tmp_path: Path) -> None:
    source = SourceFilter(tmp_path)
    assert source.matches(tmp_path / "main.go")
    assert source.matches(tmp_path / "cmd" / "webhook" / "main.go")
    assert source.matches(tmp_path / "server.js")
    assert not source.matches(tmp_path / "webhook")  # a binary built into the project
    assert not source.matches(tmp_path / "bin" / "main.go")
    assert not source.matches(tmp_path / "node_modules" / "x" / "index.js")


def test_a_project_living_under_a_build_directory_is_still_watched(tmp_path: Path) -> None:
    root = tmp_path / "build" / "project"
    assert SourceFilter(root).matches(root / "main.go")


def test_watch_globs_replace_the_default(tmp_path: Path) -> None:
    globs = SourceFilter(tmp_path, ["*.tmpl", "cmd/*"])
    assert globs.matches(tmp_path / "deep" / "page.tmpl")
    assert globs.matches(tmp_path / "cmd" / "a" / "b.txt")
    assert not globs.matches(tmp_path / "main.go")
