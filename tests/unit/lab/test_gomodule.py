from __future__ import annotations

import pytest

from webhook_dev.lab import gomodule

KUBERNETES_GO_MOD = """
module k8s.io/kubernetes

go 1.26.0

require (
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	k8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
)
"""


def test_staging_modules_are_the_in_repo_replaces() -> None:
    assert gomodule.staging_modules(KUBERNETES_GO_MOD) == [
        "k8s.io/api",
        "k8s.io/client-go",
        "k8s.io/sample-controller",
    ]


def test_staging_version_maps_release_to_v0_tag() -> None:
    assert gomodule.staging_version("1.37.2") == "v0.37.2"
    with pytest.raises(ValueError):
        gomodule.staging_version("2.0.0")


def test_required_go_reads_the_go_directive() -> None:
    assert gomodule.required_go(KUBERNETES_GO_MOD) == (1, 26, 0)
    assert gomodule.required_go("module x\n\ngo 1.24\n") == (1, 24, 0)


def test_wrapper_requires_kubernetes_and_replaces_only_published_staging_modules() -> None:
    text = gomodule.kubernetes_wrapper_go_mod(
        "1.37.2", ["k8s.io/api", "k8s.io/client-go"], (1, 26, 0)
    )
    assert "require k8s.io/kubernetes v1.37.2" in text
    assert "go 1.26.0" in text
    assert "replace k8s.io/api => k8s.io/api v0.37.2" in text
    assert "replace k8s.io/client-go => k8s.io/client-go v0.37.2" in text
    assert "sample-controller" not in text


def test_etcd_wrapper_requires_the_server_module() -> None:
    assert "require go.etcd.io/etcd/server/v3 v3.7.3" in gomodule.etcd_wrapper_go_mod("3.7.3")


def test_tools_file_imports_each_main_package_behind_a_build_tag() -> None:
    text = gomodule.tools_go(["k8s.io/kubernetes/cmd/kube-apiserver"])
    assert text.startswith("//go:build tools")
    assert '_ "k8s.io/kubernetes/cmd/kube-apiserver"' in text


def test_ldflags_inject_the_release_into_both_version_packages() -> None:
    flags = gomodule.kubernetes_ldflags("1.37.2")
    assert "-X k8s.io/component-base/version.gitVersion=v1.37.2" in flags
    assert "-X k8s.io/client-go/pkg/version.gitVersion=v1.37.2" in flags
    assert "-X k8s.io/component-base/version.gitMinor=37" in flags
