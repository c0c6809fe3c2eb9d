"""Binary resolution order: assets dir, then cache, then (refuse to) build."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook_dev.errors import LabError
from webhook_dev.lab import binaries


def fake_binary(path: Path, version_output: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{version_output}'\n")
    path.chmod(0o755)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WEBHOOK_DEV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    return binaries.kubernetes_cache_dir()


def test_assets_win_and_the_cache_fills_what_assets_lack(tmp_path: Path, cache: Path) -> None:
    assets = tmp_path / "assets"  # envtest's layout: no controller manager, no kube-proxy
    fake_binary(assets / "etcd", "etcd Version: 3.5.0")
    fake_binary(assets / "kube-apiserver", "Kubernetes v1.30.0")
    fake_binary(cache / "kube-apiserver", "Kubernetes v1.37.2")
    fake_binary(cache / "kube-controller-manager", "Kubernetes v1.37.2")
    fake_binary(cache / "kube-proxy", "Kubernetes v1.37.2")

    found = binaries.resolve(assets, allow_build=False)

    assert {name: item.source for name, item in found.items()} == {
        "etcd": "assets",
        "kube-apiserver": "assets",
        "kube-controller-manager": "cache",
        "kube-proxy": "cache",
    }
    assert found["kube-apiserver"].version == "Kubernetes v1.30.0"


def test_a_cached_binary_of_another_release_does_not_count(cache: Path) -> None:
    fake_binary(cache / "etcd", "etcd Version: 3.7.3")
    fake_binary(cache / "kube-apiserver", "Kubernetes v1.36.0")
    fake_binary(cache / "kube-controller-manager", "Kubernetes v1.37.2")
    fake_binary(cache / "kube-proxy", "Kubernetes v1.37.2")

    with pytest.raises(LabError, match="kube-apiserver") as error:
        binaries.resolve(None, allow_build=False)
    assert "webhook-dev lab build" in str(error.value)


def test_assets_dir_comes_from_the_option_or_kubebuilder_assets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    assert binaries.assets_dir_from(None) == tmp_path
    option = tmp_path / "other"
    option.mkdir()
    assert binaries.assets_dir_from(str(option)) == option
    with pytest.raises(LabError, match="does not exist"):
        binaries.assets_dir_from(str(tmp_path / "missing"))
