"""The releases the lab runs, pinned in one place.

Kubernetes 1.37.2 is the newest patch release on the Go module proxy that builds with the
Go 1.26 toolchain; etcd 3.7.3 is the newest 3.7 patch release. Changing a pin here makes
``webhook-dev lab build`` build the new release into its own cache directory.
"""

from __future__ import annotations

from dataclasses import dataclass

KUBERNETES_VERSION = "1.37.2"
ETCD_VERSION = "3.7.3"


@dataclass(frozen=True)
class Binary:
    """One program the lab runs: where its ``main`` package lives and how to check it."""

    name: str
    package: str
    # Substring that ``<binary> --version`` must print for a binary we built or cached.
    version_marker: str
    # Whether the lab cannot start without it (kubectl is a convenience for users).
    required: bool = True
    version_args: tuple[str, ...] = ("--version",)
    # Only a lab with a node runs it (kubelet, kube-scheduler); ``--no-node`` needs it not.
    node: bool = False


KUBERNETES_BINARIES: tuple[Binary, ...] = (
    Binary("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", f"v{KUBERNETES_VERSION}"),
    Binary(
        "kube-controller-manager",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
        f"v{KUBERNETES_VERSION}",
    ),
    Binary("kube-proxy", "k8s.io/kubernetes/cmd/kube-proxy", f"v{KUBERNETES_VERSION}"),
    # The node's: built in the same go build as the others, so they share its cache.
    Binary("kubelet", "k8s.io/kubernetes/cmd/kubelet", f"v{KUBERNETES_VERSION}", node=True),
    Binary(
        "kube-scheduler",
        "k8s.io/kubernetes/cmd/kube-scheduler",
        f"v{KUBERNETES_VERSION}",
        node=True,
    ),
    Binary(
        "kubectl",
        "k8s.io/kubernetes/cmd/kubectl",
        f"v{KUBERNETES_VERSION}",
        required=False,
        version_args=("version", "--client"),
    ),
)
ETCD_BINARY = Binary("etcd", "go.etcd.io/etcd/server/v3", f"etcd Version: {ETCD_VERSION}")
ALL_BINARIES: tuple[Binary, ...] = (ETCD_BINARY, *KUBERNETES_BINARIES)
