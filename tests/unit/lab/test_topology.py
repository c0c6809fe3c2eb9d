from __future__ import annotations

import ipaddress

import pytest

from webhook_dev.lab.topology import Topology


def test_default_addresses_are_two_disjoint_point_to_point_links() -> None:
    topology = Topology()
    host_link = ipaddress.ip_network(f"{topology.host_ip}/30", strict=False)
    ws_link = ipaddress.ip_network(f"{topology.master_ip}/30", strict=False)
    assert ipaddress.ip_address(topology.master_host_ip) in host_link
    assert ipaddress.ip_address(topology.workstation_ip) in ws_link
    assert not host_link.overlaps(ws_link)


def test_every_name_outside_the_namespaces_carries_the_prefix() -> None:
    topology = Topology(prefix="wdx")
    names = [
        topology.master_ns,
        topology.workstation_ns,
        topology.host_link,
        *topology.netns_etc_dirs,
    ]
    assert all("wdx-" in name for name in names)


def test_interface_names_fit_the_kernel_limit() -> None:
    topology = Topology(prefix="abcdefgh")
    for name in (
        topology.host_link,
        topology.master_host_link,
        topology.master_ws_link,
        topology.ws_link,
    ):
        assert len(name) <= 15


@pytest.mark.parametrize("prefix", ["has space", "much-too-long-prefix", ""])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError):
        Topology(prefix=prefix)


def test_apiserver_certificate_covers_both_master_addresses_and_the_service_ip() -> None:
    topology = Topology()
    dns, ips = topology.apiserver_sans
    assert {topology.master_ip, topology.master_host_ip, "10.96.0.1"} <= set(ips)
    assert "kubernetes.default.svc.cluster.local" in dns


def test_environment_selects_a_second_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_DEV_LAB_PREFIX", "wdlab2")
    monkeypatch.setenv("WEBHOOK_DEV_LAB_SUBNET", "10.237.9.0/24")
    topology = Topology.from_env()
    assert topology.master_ns == "wdlab2-master"
    assert topology.master_ip == "10.237.9.5"
