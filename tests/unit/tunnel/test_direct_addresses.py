"""Choosing ``--direct``'s address and allow-list from what the cluster shows (pure)."""

from __future__ import annotations

import pytest

from webhook_dev.errors import PreflightError
from webhook_dev.tunnel.direct import AllowList
from webhook_dev.tunnel.direct_addresses import ClusterAddresses, plan_direct


def test_allow_list_matches_addresses_and_networks_of_either_family() -> None:
    allowed = AllowList.of(["10.0.0.5", "192.168.0.0/16", "fd00::/8"])
    assert allowed.allows("10.0.0.5")
    assert not allowed.allows("10.0.0.6")
    assert allowed.allows("192.168.49.2")
    assert allowed.allows("::ffff:10.0.0.5")  # a v4 peer on a dual-stack socket
    assert allowed.allows("fd00::1")
    assert not allowed.allows("not-an-ip")
    assert str(allowed) == "10.0.0.5, 192.168.0.0/16, fd00::/8"


def test_allow_list_names_a_bad_entry() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300'"):
        AllowList.of(["10.0.0.300"])


def test_control_plane_nodes_are_the_allowed_peers_when_the_api_shows_them() -> None:
    learned = ClusterAddresses(
        ["127.0.0.1"], control_plane={"172.18.0.2": "kind-control-plane"}, advertised=["172.18.0.2"]
    )
    peers, because = learned.allowed_peers()
    assert peers == ["172.18.0.2"]
    assert "kind-control-plane" in because


def test_the_apiserver_host_is_allowed_when_no_control_plane_node_shows() -> None:
    learned = ClusterAddresses(["10.1.2.3"], advertised=["10.1.2.4"])
    peers, because = learned.allowed_peers()
    assert peers == ["10.1.2.4", "10.1.2.3"]
    assert "apiserver" in because


def test_a_local_port_mapping_routes_toward_the_control_plane_node() -> None:
    kind = ClusterAddresses(["127.0.0.1"], control_plane={"172.18.0.2": "kind-control-plane"})
    assert kind.route_target() == "172.18.0.2"
    remote = ClusterAddresses(["10.1.2.3"], control_plane={"172.18.0.2": "cp"})
    assert remote.route_target() == "10.1.2.3"


def test_plan_with_an_explicit_address_and_allow_from() -> None:
    learned = ClusterAddresses(["10.1.2.3"], control_plane={"10.1.2.3": "cp"})
    spec = plan_direct(learned, address="10.9.9.9", allow_from=["10.8.0.0/16"], port=8443)
    assert spec.address == "10.9.9.9"
    assert spec.port == 8443
    assert spec.allowed.allows("10.1.2.3") and spec.allowed.allows("10.8.1.1")
    assert not spec.allowed.allows("10.9.9.8")
    assert "--allow-from" in spec.allowed_because


def test_plan_refuses_when_nobody_could_be_let_in() -> None:
    with pytest.raises(PreflightError, match="whom to let in"):
        plan_direct(ClusterAddresses(["127.0.0.1"]), address="10.9.9.9")
    with pytest.raises(PreflightError, match="not an IP"):
        plan_direct(ClusterAddresses(["10.1.2.3"], advertised=["10.1.2.3"]), address="laptop")


def test_plan_refuses_without_a_way_to_choose_the_address() -> None:
    with pytest.raises(PreflightError, match="--address"):
        plan_direct(ClusterAddresses(["127.0.0.1"]), allow_from=["10.0.0.0/8"])
