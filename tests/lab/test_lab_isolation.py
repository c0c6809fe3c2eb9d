"""Proof 3 and the lab's interface: the workstation reaches the master, never the reverse.

The workstation is a laptop behind NAT: it can open connections to the apiserver and to
sshd, but nothing on the master (or in it: the apiserver, a compromised webhook) can open
a connection to the workstation or to the machine's root namespace.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from webhook_dev.lab import Lab

pytestmark = pytest.mark.e2e

PORT = 17000
LISTEN = (
    "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, "
    "socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(); "
    "print('listening', flush=True); s.accept()"
)
CONNECT = (
    "import socket,sys\ntry:\n socket.create_connection((sys.argv[1], int(sys.argv[2])),"
    " timeout=3); print('connected')\nexcept OSError as e: print(type(e).__name__)"
)


def connect_from(argv_prefix: Callable[[list[str]], list[str]], host: str, port: int) -> str:
    result = subprocess.run(
        argv_prefix([sys.executable, "-c", CONNECT, host, str(port)]),
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout.strip()


def test_master_cannot_open_connection_to_workstation(
    lab: Lab, background: Callable[..., Any]
) -> None:
    background(
        lab.workstation_argv([sys.executable, "-c", LISTEN, lab.workstation_ip, str(PORT)]),
        ready_line="listening",
    )
    assert connect_from(lab.master_argv, lab.workstation_ip, PORT) == "TimeoutError"
    # The listener is really there: the workstation itself reaches it.
    assert connect_from(lab.workstation_argv, lab.workstation_ip, PORT) == "connected"


def test_master_cannot_open_connection_to_root_namespace(
    lab: Lab, background: Callable[..., Any]
) -> None:
    host_ip = lab.topology.host_ip
    background([sys.executable, "-c", LISTEN, host_ip, str(PORT + 1)], ready_line="listening")
    assert connect_from(lab.master_argv, host_ip, PORT + 1) == "TimeoutError"
    assert connect_from(lambda argv: argv, host_ip, PORT + 1) == "connected"


def test_workstation_reaches_apiserver_and_sshd(lab: Lab) -> None:
    assert connect_from(lab.workstation_argv, lab.master_ip, 6443) == "connected"
    assert connect_from(lab.workstation_argv, lab.master_ip, 22) == "connected"


def test_lab_exec_lists_namespaces_with_the_kubernetes_client(lab: Lab) -> None:
    code = (
        "from kubernetes import client, config; config.load_kube_config(); "
        "print(' '.join(n.metadata.name for n in client.CoreV1Api().list_namespace().items))"
    )
    result = subprocess.run(
        [sys.executable, "-m", "webhook_dev", "lab", "exec", "--", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert {"default", "kube-system"} <= set(result.stdout.split())


def test_ssh_from_workstation_verifies_host_key_without_prompts(lab: Lab) -> None:
    result = subprocess.run(
        lab.workstation_argv(["sh", "-c", 'ssh "$WEBHOOK_DEV_LAB_SSH" echo hello-from-master']),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello-from-master"


def test_asyncssh_from_workstation_connects_with_system_config_and_known_hosts(
    lab: Lab,
) -> None:
    code = (
        "import asyncio, asyncssh, os\n"
        "async def main():\n"
        "    async with asyncssh.connect(os.environ['WEBHOOK_DEV_LAB_SSH'].split('@')[1],\n"
        "            username='root', config=['/etc/ssh/ssh_config']) as conn:\n"
        "        print((await conn.run('echo ok', check=True)).stdout.strip())\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run(
        lab.workstation_argv([sys.executable, "-c", code]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_lab_links_carry_no_ipv6_so_the_ipv4_firewall_is_the_whole_story(lab: Lab) -> None:
    """A veth's IPv6 link-local address would let the master reach the workstation at
    fe80::…%link, past the iptables (IPv4) rules."""
    for namespace in (lab.master_ns, lab.workstation_ns):
        addresses = subprocess.run(
            ["ip", "-n", namespace, "-6", "-o", "addr", "show", "scope", "link"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert addresses == "", f"{namespace} has IPv6 link-local addresses: {addresses}"
