"""The node's pure parts: addresses, config files, manifests with the lab's overrides.

No root, no network: these run everywhere, in a second.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import tomllib
from pathlib import Path

import pytest
import yaml

from webhook_dev.errors import LabError
from webhook_dev.lab import node, node_configs, workloads
from webhook_dev.lab.images import NGINX_IMAGE, PAUSE_IMAGE
from webhook_dev.lab.layout import LabLayout
from webhook_dev.lab.topology import Topology
from webhook_dev.tls import certs

LAYOUT = LabLayout(Path("/run/webhook-dev-lab-x"))


def test_pod_cidrs_of_two_labs_never_overlap_and_stay_inside_their_subnets() -> None:
    first = Topology("wda", "10.237.40.0/24")
    second = Topology("wdb", "10.237.41.0/24")
    for topology in (first, second):
        pods = ipaddress.ip_network(topology.pod_cidr)
        assert pods.subnet_of(ipaddress.ip_network(topology.subnet))  # type: ignore[arg-type]
        links = [topology.master_ip, topology.workstation_ip, topology.node_ip]
        assert not any(ipaddress.ip_address(ip) in pods for ip in links)
    assert not ipaddress.ip_network(first.pod_cidr).overlaps(ipaddress.ip_network(second.pod_cidr))


def test_node_names_carry_the_prefix_and_fit_the_interface_limit() -> None:
    topology = Topology(prefix="abcdefgh")
    for name in (topology.master_node_link, topology.node_master_link, topology.pod_bridge):
        assert name.startswith("abcdefgh-") and len(name) <= 15
    assert topology.node_ns.startswith("abcdefgh-")
    assert topology.node_cgroup == "/abcdefgh-node"


def test_a_subnet_too_small_for_pods_cannot_have_a_node() -> None:
    assert Topology(subnet="10.237.0.0/26").can_have_node
    assert not Topology(subnet="10.237.0.0/27").can_have_node


def test_kubelet_config_runs_on_cgroup_v1_and_keeps_the_machine_as_it_is() -> None:
    topology = Topology("wdx", "10.237.9.0/24")
    config = yaml.safe_load(node_configs.kubelet_config(LAYOUT, topology, client_ca="/ca.crt"))
    assert config["failCgroupV1"] is False
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["cgroupRoot"] == "/wdx-node"
    assert config["protectKernelDefaults"] is True  # never rewrite the machine's sysctls
    assert config["imageGCHighThresholdPercent"] == 100  # images cannot be pulled back
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authentication"]["x509"]["clientCAFile"] == "/ca.crt"
    assert config["address"] == topology.node_ip
    every_path = [value for value in config.values() if isinstance(value, str)]
    assert all(not p.startswith(("/var/", "/etc/")) or p == "/etc/resolv.conf" for p in every_path)


def test_containerd_config_keeps_everything_in_the_lab_directory() -> None:
    config = tomllib.loads(node_configs.containerd_config(LAYOUT, sandbox_image=PAUSE_IMAGE))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == PAUSE_IMAGE
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["restrict_oom_score_adj"] is True
    runc = cri["containerd"]["runtimes"]["runc"]["options"]
    assert runc["SystemdCgroup"] is False
    for path in (config["root"], config["state"], config["grpc"]["address"], runc["Root"]):
        assert path.startswith(str(LAYOUT.root))


def test_cni_config_routes_the_pod_cidr_without_nat_and_keeps_leases_in_the_lab() -> None:
    topology = Topology("wdx", "10.237.9.0/24")
    bridge = json.loads(node_configs.cni_conflist(LAYOUT, topology))["plugins"][0]
    assert bridge["isGateway"] is True and bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"][0][0]["subnet"] == "10.237.9.128/25"
    assert bridge["ipam"]["dataDir"].startswith(str(LAYOUT.root))


def test_containerd_starts_in_its_own_mount_namespace_with_the_kubelets_sysctls() -> None:
    argv = node.containerd_command(LAYOUT, Topology("wdx"), ["containerd", "--config=x"])
    assert argv[:4] == ["unshare", "--mount", "--propagation", "slave"]
    assert "--net=/run/netns/wdx-node" in argv
    script = argv[argv.index("-ec") + 1]
    for path in node.KERNEL_TUNABLES:
        assert f"/proc/sys/{path}" in script
    assert argv[-2:] == ["containerd", "--config=x"]


def _sidecar_overrides(cert_manager: bool) -> list[dict[str, object]]:
    ca = certs.new_ca("test-ca")
    return workloads.with_overrides(
        workloads.sample_manifests("sidecar-injector"),
        ca_pem=ca.cert_pem,
        ca_key_pem=ca.key_pem,
        cert_manager=cert_manager,
    )


def test_without_cert_manager_the_sample_gets_a_secret_and_ca_bundle_from_the_lab() -> None:
    documents = _sidecar_overrides(cert_manager=False)
    kinds = [d["kind"] for d in documents]
    assert "Certificate" not in kinds and "Issuer" not in kinds
    secret = next(d for d in documents if d["kind"] == "Secret")
    assert secret["metadata"] == {
        "name": "sidecar-injector-tls",
        "namespace": "sidecar-injector",
        "labels": {"webhook-dev.io/lab": "serving-certificate"},
    }
    data = secret["data"]
    assert isinstance(data, dict)
    dns, _ = certs.subject_alternative_names(base64.b64decode(data["tls.crt"]))
    assert "sidecar-injector.sidecar-injector.svc" in dns
    webhook = next(d for d in documents if d["kind"] == "MutatingWebhookConfiguration")
    bundle = webhook["webhooks"][0]["clientConfig"]["caBundle"]  # type: ignore[index]
    assert base64.b64decode(bundle) == base64.b64decode(data["ca.crt"])
    # Secrets and namespaces first, so the Deployment's Pod finds its volume at once.
    assert kinds.index("Secret") < kinds.index("Deployment")


def test_the_sidecar_image_is_the_labs_nginx_and_the_samples_image_is_unchanged() -> None:
    deployment = next(d for d in _sidecar_overrides(cert_manager=True) if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["image"] == "sample-webhooks:dev"
    assert {"name": "SIDECAR_IMAGE", "value": NGINX_IMAGE} in container["env"]


def test_with_cert_manager_its_objects_are_applied_as_they_are() -> None:
    kinds = [d["kind"] for d in _sidecar_overrides(cert_manager=True)]
    assert "Certificate" in kinds and "Secret" not in kinds


def test_object_paths_follow_the_api_groups_and_scopes() -> None:
    assert (
        workloads.object_path(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "d", "namespace": "n"},
            }
        )
        == "/apis/apps/v1/namespaces/n/deployments/d"
    )
    assert (
        workloads.object_path({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})
        == "/api/v1/namespaces/n"
    )


def test_an_unknown_sample_is_refused_with_the_choices() -> None:
    with pytest.raises(LabError, match="sidecar-injector"):
        workloads.sample_manifests("nope")


def test_without_cert_manager_the_website_crd_trusts_the_labs_ca_for_its_conversion() -> None:
    ca = certs.new_ca("test-ca")
    documents = workloads.with_overrides(
        workloads.sample_manifests("website"),
        ca_pem=ca.cert_pem,
        ca_key_pem=ca.key_pem,
        cert_manager=False,
    )
    crd = next(d for d in documents if d["kind"] == "CustomResourceDefinition")
    client_config = crd["spec"]["conversion"]["webhook"]["clientConfig"]  # type: ignore[index]
    assert base64.b64decode(client_config["caBundle"]) == ca.cert_pem
    assert "cert-manager.io/inject-ca-from" not in crd["metadata"].get("annotations", {})  # type: ignore[attr-defined]
    assert workloads.object_path(crd) == (
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/websites.samples.webhook-dev.io"
    )
