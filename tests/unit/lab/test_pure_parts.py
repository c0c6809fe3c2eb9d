"""State file, kube-proxy rule parsing, namespace naming and certificates: the small pure
pieces under the lab."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from webhook_dev.errors import LabError
from webhook_dev.lab.netns import dnat_destinations
from webhook_dev.lab.pytest_plugin import namespace_name_for
from webhook_dev.lab.ssh_keys import SSHKeyPair
from webhook_dev.lab.state import LabState

# Real kube-proxy output lines, abridged; kept verbatim, hence the long lines.
IPTABLES_SAVE = """\
*nat
-A KUBE-SEP-AAA -p tcp -m comment --comment web/webhook:https -m tcp -j DNAT --to-destination 10.237.0.5:19443
-A KUBE-SEP-BBB -p tcp -m comment --comment web/webhook:https -m tcp -j DNAT --to-destination 10.244.0.10:8443
-A KUBE-SEP-CCC -p tcp -m comment --comment web/webhook-other -m tcp -j DNAT --to-destination 10.0.0.9:1
-A KUBE-SEP-DDD -p tcp -m comment --comment "web/plain" -m tcp -j DNAT --to-destination 10.0.0.7:80
-A KUBE-SVC-XXX -m comment --comment "web/webhook:https -> 10.237.0.5:19443" -j KUBE-SEP-AAA
COMMIT
"""  # noqa: E501


def test_dnat_destinations_lists_endpoints_of_exactly_that_service() -> None:
    assert dnat_destinations(IPTABLES_SAVE, "web", "webhook") == [
        "10.237.0.5:19443",
        "10.244.0.10:8443",
    ]
    assert dnat_destinations(IPTABLES_SAVE, "web", "plain") == ["10.0.0.7:80"]
    assert dnat_destinations(IPTABLES_SAVE, "other", "webhook") == []


def test_state_round_trips(tmp_path: Path) -> None:
    state = LabState(
        root="/run/x",
        prefix="wdlab",
        subnet="10.237.0.0/24",
        gateway_ports="yes",
        aggregator_routing=True,
        pids={"etcd": 42},
    )
    state.save(tmp_path / "state.json")
    assert LabState.load(tmp_path / "state.json") == state


def test_missing_state_says_how_to_start_a_lab(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="no lab is running") as error:
        LabState.load(tmp_path / "state.json")
    assert "webhook-dev lab up" in str(error.value)


def test_state_of_an_unknown_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"version": 99}')
    with pytest.raises(LabError, match="version 99"):
        LabState.load(tmp_path / "state.json")


@pytest.mark.parametrize(
    "test_name", ["test_x[clusterip-via-kube-proxy]", "TEST_" + "long" * 30, "test_ünïcode"]
)
def test_namespace_names_are_valid_unique_and_say_which_test(test_name: str) -> None:
    first, second = namespace_name_for(test_name), namespace_name_for(test_name)
    assert first != second
    assert len(first) <= 63
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", first)
    assert first.startswith("t-test")


def test_ssh_key_pair_is_in_openssh_formats() -> None:
    pair = SSHKeyPair.create("lab")
    assert pair.private_openssh.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert pair.public_line.startswith("ssh-ed25519 ") and pair.public_line.endswith(" lab")
