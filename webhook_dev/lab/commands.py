"""Command lines of the control-plane components (pure: paths and choices in, argv out).

The flags follow what kubeadm and envtest pass, trimmed to a node without a kubelet:
controllers are limited to the ones whose behaviour a webhook redirect depends on
(namespaces, Endpoints/EndpointSlices and their mirroring, service accounts), and nothing
touches machine-wide settings outside the lab's namespaces.
"""

from __future__ import annotations

from pathlib import Path

from webhook_dev.lab.layout import LabLayout
from webhook_dev.lab.topology import APISERVER_PORT, SERVICE_CIDR, Topology

# kube-controller-manager controllers the lab runs. "endpointslice-mirroring" copies
# manual Endpoints of selectorless Services into EndpointSlices, which is exactly what
# `webhook-dev up` writes; the service-account ones make Pods admissible.
CONTROLLERS = (
    "namespace-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
)

# With a node, Deployments and StatefulSets must turn into Pods, and deleting a Deployment
# must delete its ReplicaSets and Pods: controllers a lab without a node leaves off, so
# objects a test creates there stay as written.
NODE_CONTROLLERS = (
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "garbage-collector-controller",
)

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


def etcd_argv(etcd: Path, layout: LabLayout) -> list[str]:
    # --unsafe-no-fsync: the data is thrown away with the lab; this is what envtest does.
    return [
        str(etcd),
        f"--data-dir={layout.etcd_data}",
        "--name=lab",
        "--listen-client-urls=http://127.0.0.1:2379",
        "--advertise-client-urls=http://127.0.0.1:2379",
        "--listen-peer-urls=http://127.0.0.1:2380",
        "--initial-advertise-peer-urls=http://127.0.0.1:2380",
        "--initial-cluster=lab=http://127.0.0.1:2380",
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def apiserver_argv(
    apiserver: Path,
    layout: LabLayout,
    topology: Topology,
    *,
    aggregator_routing: bool,
    node: bool = False,
) -> list[str]:
    """kube-apiserver; ``aggregator_routing`` picks how it resolves a webhook Service.

    Off (the default in most clusters): it dials the Service's ClusterIP and kube-proxy's
    DNAT picks an endpoint. On: it resolves an endpoint itself from EndpointSlices, with no
    kube-proxy in the path. ``webhook-dev up`` must work with both.

    With a ``node``, the apiserver calls its kubelet (logs, exec, port-forward) with a
    client certificate and verifies the kubelet's serving certificate against the lab's CA.
    """
    kubelet = [
        f"--kubelet-client-certificate={layout.client_cert('kube-apiserver-kubelet-client')}",
        f"--kubelet-client-key={layout.client_key('kube-apiserver-kubelet-client')}",
        f"--kubelet-certificate-authority={layout.ca_cert}",
        "--kubelet-preferred-address-types=InternalIP",
    ]
    return [
        str(apiserver),
        "--etcd-servers=http://127.0.0.1:2379",
        "--bind-address=0.0.0.0",
        f"--secure-port={APISERVER_PORT}",
        f"--advertise-address={topology.master_ip}",
        f"--tls-cert-file={layout.apiserver_cert}",
        f"--tls-private-key-file={layout.apiserver_key}",
        f"--client-ca-file={layout.ca_cert}",
        f"--service-account-key-file={layout.service_account_pub}",
        f"--service-account-signing-key-file={layout.service_account_key}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        f"--enable-aggregator-routing={'true' if aggregator_routing else 'false'}",
        "--endpoint-reconciler-type=lease",
        "--profiling=false",
        *(kubelet if node else []),
        "--v=1",
    ]


def controller_manager_argv(
    controller_manager: Path, layout: LabLayout, *, node: bool = False
) -> list[str]:
    kubeconfig = layout.component_kubeconfig("kube-controller-manager")
    return [
        str(controller_manager),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
        f"--controllers={','.join(CONTROLLERS + (NODE_CONTROLLERS if node else ()))}",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={layout.service_account_key}",
        f"--root-ca-file={layout.ca_cert}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # Webhook tests create and delete objects in quick succession; react at once.
        "--concurrent-endpoint-syncs=5",
        "--v=1",
    ]


def kube_proxy_argv(kube_proxy: Path, layout: LabLayout) -> list[str]:
    return [str(kube_proxy), f"--config={layout.kube_proxy_config}", "--v=1"]


def sshd_argv(sshd: Path, layout: LabLayout) -> list[str]:
    # -D: stay in the foreground so we own the pid; -e: log to stderr (our log file).
    # sshd re-executes itself by absolute path for each connection and on SIGHUP.
    return [str(sshd), "-D", "-e", "-f", str(layout.sshd_config)]
