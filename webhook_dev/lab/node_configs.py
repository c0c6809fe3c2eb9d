"""Text of the node's config files: containerd, CNI, kubelet (pure: values in, text out).

The choices follow kind's node image where they apply to a node in a network namespace
of this machine, and differ where the lab must not touch the machine: every path is
inside the lab's directory, nothing listens outside the node's namespace, the cgroups live
under a root of the lab's own, and no image is ever pulled (there is no registry) or
garbage-collected (it could not be pulled again). See docs/lab.md, "The node".
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from webhook_dev.lab.layout import LabLayout
from webhook_dev.lab.topology import CLUSTER_DOMAIN, Topology

# Debian's packages (dev/setup.sh): containerd 1.6, runc 1.1, the CNI reference plugins.
RUNC = "/usr/sbin/runc"
CNI_BIN_DIR = "/usr/lib/cni"
KUBELET_PORT = 10250


def _toml_string(value: str) -> str:
    return json.dumps(value)  # TOML basic strings use JSON's escapes for what we write


def containerd_config(layout: LabLayout, *, sandbox_image: str) -> str:
    """containerd 1.6 (config version 2) with the CRI plugin for the lab's kubelet.

    ``SystemdCgroup = false``: this machine runs no systemd as init, so cgroupfs is the
    only driver, and the kubelet is told the same (containerd 1.6 cannot tell it, see
    :func:`kubelet_config`). ``netns_mounts_under_state_dir``: each Pod's network
    namespace is bind-mounted under the lab's state dir, not into the machine's
    /run/netns. ``disable_apparmor``: the lab makes no host profiles.
    ``restrict_oom_score_adj``: the kubelet asks for -998 for sandboxes, and lowering an
    OOM score needs CAP_SYS_RESOURCE, which a machine that is itself a container (this
    one) may not grant; runc then dies in its nsexec stage ("can't get final child's PID
    from pipe"). Restricted, no container gets a score below containerd's own.
    """
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    lines = [
        "# Written by webhook-dev lab.",
        "version = 2",
        f"root = {_toml_string(str(layout.containerd_root))}",
        f"state = {_toml_string(str(layout.containerd_state))}",
        # Snapshotters that cannot work here only log errors at start-up; skip them.
        'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", '
        '"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", '
        '"io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]',
        "",
        "[grpc]",
        f"  address = {_toml_string(str(layout.containerd_socket))}",
        "",
        "[ttrpc]",
        f"  address = {_toml_string(str(layout.containerd_socket) + '.ttrpc')}",
        "",
        "[debug]",
        '  address = ""',
        '  level = "warn"',
        "",
        "[metrics]",
        '  address = ""',
        "",
        "[plugins]",
        '  [plugins."io.containerd.internal.v1.opt"]',
        f"    path = {_toml_string(str(layout.node / 'containerd' / 'opt'))}",
        f"  [{cri}]",
        f"    sandbox_image = {_toml_string(sandbox_image)}",
        "    netns_mounts_under_state_dir = true",
        "    disable_apparmor = true",
        "    restrict_oom_score_adj = true",
        '    stream_server_address = "127.0.0.1"',
        "    enable_selinux = false",
        f"    [{cri}.containerd]",
        '      snapshotter = "overlayfs"',
        '      default_runtime_name = "runc"',
        "      discard_unpacked_layers = false",
        f"      [{cri}.containerd.runtimes.runc]",
        '        runtime_type = "io.containerd.runc.v2"',
        f"        [{cri}.containerd.runtimes.runc.options]",
        f"          BinaryName = {_toml_string(RUNC)}",
        # runc's state (default /run/containerd/runc) in the lab's directory too.
        f"          Root = {_toml_string(str(layout.containerd_state / 'runc'))}",
        "          SystemdCgroup = false",
        f"    [{cri}.cni]",
        f"      bin_dir = {_toml_string(CNI_BIN_DIR)}",
        f"      conf_dir = {_toml_string(str(layout.cni_conf_dir))}",
        "      max_conf_num = 1",
        "",
    ]
    return "\n".join(lines)


def cni_conflist(layout: LabLayout, topology: Topology) -> str:
    """bridge + host-local: Pods on a bridge in the node, addresses from the Pod CIDR.

    ``isGateway``: the bridge holds the Pods' gateway and the node routes for them, so a
    Pod's address is reachable from the master as on a real cluster (the master routes
    the Pod CIDR to the node; no NAT, ``ipMasq`` off). host-local keeps its leases in the
    lab's directory, not /var/lib/cni.
    """
    document: dict[str, Any] = {
        "cniVersion": "0.4.0",
        "name": topology.pod_network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": topology.pod_bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(layout.cni_ipam_dir),
                    "ranges": [[{"subnet": topology.pod_cidr, "gateway": topology.pod_gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def kubelet_config(layout: LabLayout, topology: Topology, *, client_ca: str) -> str:
    """KubeletConfiguration for a node on cgroup v1 beside other labs and the machine.

    * ``failCgroupV1: false``: since 1.35 the kubelet refuses cgroup v1 unless told.
    * ``cgroupDriver: cgroupfs``: kubelet 1.37 asks the runtime for its driver
      (``RuntimeConfig``, containerd >= 2.0) and falls back to this field for containerd
      1.6, logging that the fallback goes away in 1.38.
    * ``cgroupRoot``: the lab's own cgroup in every hierarchy, so two labs' Pods (and the
      machine's own cgroups) never share a parent, and teardown removes one subtree.
    * No eviction thresholds and no image garbage collection: an evicted Pod or a
      deleted image is something a lab without a registry cannot get back.
    * x509 client certificates from the lab's CA, requests authorized by the apiserver
      (``Webhook``), as kubeadm sets up; serving certificate from the lab's CA too, so the
      apiserver verifies the kubelet for logs, exec and port-forward.
    """
    document: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": topology.node_cgroup,
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "address": topology.node_ip,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "tlsCertFile": str(layout.kubelet_cert),
        "tlsPrivateKeyFile": str(layout.kubelet_key),
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": client_ca},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "/etc/resolv.conf",
        "podLogsDir": str(layout.pod_logs),
        "failSwapOn": False,
        "protectKernelDefaults": True,  # see node.py: the machine's sysctls stay as they are
        "evictionHard": {
            "memory.available": "0%",
            "nodefs.available": "0%",
            "nodefs.inodesFree": "0%",
            "imagefs.available": "0%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        # Quick reactions: a test waits for these, a real node may take its time.
        "nodeStatusUpdateFrequency": "4s",
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "5s",
        "maxPods": 110,
        "localStorageCapacityIsolation": True,
        "staticPodPath": "",
    }
    return yaml.safe_dump(document, sort_keys=False)


def kubelet_argv(kubelet: str, layout: LabLayout, topology: Topology, kubeconfig: str) -> list[str]:
    return [
        kubelet,
        f"--config={layout.kubelet_config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={layout.kubelet_root}",
        f"--cert-dir={layout.pki}",
        f"--hostname-override={topology.node_name}",
        f"--node-ip={topology.node_ip}",
        "--node-labels=webhook-dev.io/lab-node=true",
        "--v=1",
    ]


def containerd_argv(containerd: str, layout: LabLayout) -> list[str]:
    return [containerd, f"--config={layout.containerd_config}"]


def scheduler_argv(scheduler: str, kubeconfig: str) -> list[str]:
    return [
        scheduler,
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--leader-elect=false",
        "--v=1",
    ]
