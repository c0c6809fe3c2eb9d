"""The :class:`Lab` handle: start a lab, attach to a running one, use it, tear it down.

One lab per machine (per ``$WEBHOOK_DEV_LAB_DIR`` and prefix). ``Lab.start`` is what
``webhook-dev lab up`` and the pytest plugin call; ``Lab.attach`` is how another process
(``webhook-dev up`` in a test, ``lab exec``) gets the same handle from the state file;
``teardown`` removes everything, also after ``lab up`` was killed half-way.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webhook_dev.errors import LabError
from webhook_dev.lab import (
    binaries,
    commands,
    configs,
    images,
    netns,
    node,
    node_configs,
    processes,
    readiness,
    workloads,
)
from webhook_dev.lab.gobuild import ProgressCallback
from webhook_dev.lab.layout import LabLayout, lab_dir
from webhook_dev.lab.ssh_keys import SSHKeyPair
from webhook_dev.lab.state import LabState
from webhook_dev.lab.topology import APISERVER_PORT, SSH_PORT, Topology
from webhook_dev.paths import ensure_private_dir, write_private
from webhook_dev.tls import certs

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

SSHD = "/usr/sbin/sshd"
DEFAULT_GATEWAY_PORTS: configs.GatewayPorts = "clientspecified"
READY_TIMEOUT_SECONDS = 60.0
# Components in start order; teardown stops them in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-proxy", "sshd")
# ... and a lab with a node adds these: the scheduler in the master, the rest in the node.
NODE_COMPONENTS = ("containerd", "kube-scheduler", "kubelet", "kube-proxy-node")
NODE_READY_TIMEOUT_SECONDS = 60.0
_ADMIN = "admin"
# A selectorless Service in kube-system whose Endpoints the lab rewrites to check that the
# controllers are watching (see Lab.wait_controllers_caught_up).
_CANARY = "webhook-dev-lab-canary"


def node_preflight() -> str | None:
    """Why this machine cannot run the lab's node, or None."""
    return node.preflight() or images.preflight(building=False)


def preflight() -> str | None:
    """Why the lab cannot run on this machine, or None. Used by the pytest plugin to skip."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, iptables, sshd)"
    for tool in ("ip", "iptables", "ss"):
        if not shutil.which(tool):
            return f"the lab needs `{tool}` (run dev/setup.sh: iproute2, iptables)"
    if not os.access(SSHD, os.X_OK):
        return f"the lab needs OpenSSH's sshd at {SSHD} (apt-get install openssh-server)"
    if not os.path.isdir("/run/netns") and not os.access("/run", os.W_OK):
        return "cannot create network namespaces (/run is not writable)"
    return None


@dataclass
class Lab:
    """A running lab. Attributes are what a test or ``webhook-dev up`` needs to use it."""

    state: LabState

    # ---- construction -------------------------------------------------------------

    @classmethod
    def start(
        cls,
        *,
        assets: Path | None = None,
        gateway_ports: configs.GatewayPorts = DEFAULT_GATEWAY_PORTS,
        aggregator_routing: bool = False,
        routable: bool = False,
        allow_build: bool = False,
        progress: ProgressCallback | None = None,
        topology: Topology | None = None,
        root: Path | None = None,
        with_node: bool = True,
    ) -> Lab:
        """Create namespaces, start every component, and return once the lab is usable.

        ``with_node``: also a worker node (kubelet, containerd, CNI, the built images) and
        kube-scheduler, and return once the node is Ready. On any failure everything made
        so far is removed before the error propagates.
        """
        reason = preflight() or (node_preflight() if with_node else None)
        if reason:
            raise LabError(f"cannot start the lab: {reason}", hint="or `lab up --no-node`")
        topology = topology or Topology.from_env()
        if with_node and not topology.can_have_node:
            raise LabError(
                f"the lab's subnet {topology.subnet} is too small for a node (Pods get its "
                "upper half)",
                hint="use a /26 or larger (WEBHOOK_DEV_LAB_SUBNET), or `lab up --no-node`",
            )
        layout = LabLayout(root or lab_dir())
        _refuse_if_present(layout, topology)
        in_use = netns.subnet_in_use(topology.subnet)
        if in_use:
            raise LabError(
                f"the lab's subnet {topology.subnet} is already in use: {in_use}",
                hint="choose another with Topology(subnet=...)",
            )
        found = binaries.resolve(
            assets,
            allow_build=allow_build,
            progress=progress,
            include_optional=True,
            node=with_node,
        )
        archive = images.resolve(allow_build=allow_build, progress=progress) if with_node else None
        ensure_private_dir(layout.root)
        state = LabState(
            root=str(layout.root),
            prefix=topology.prefix,
            subnet=topology.subnet,
            gateway_ports=gateway_ports,
            aggregator_routing=aggregator_routing,
            routable=routable,
            binaries={name: str(item.path) for name, item in found.items()},
            owner_pid=os.getpid(),
            node=with_node,
        )
        state.save(layout.state_file)  # before anything exists: teardown can find it all
        lab = cls(state)
        try:
            lab._write_files()
            netns.create(topology, routable=routable)
            if with_node:
                netns.create_node(topology)
                node.create_cgroups(topology)
            lab._write_workstation_ssh_config()
            lab._start_components(archive)
            lab.wait_ready()
            if with_node:
                lab.wait_node_ready()
        except BaseException:
            teardown(layout.root)
            raise
        return lab

    @classmethod
    def attach(cls, root: Path | None = None) -> Lab:
        """The lab described by the state file; raises :class:`LabError` if none runs."""
        layout = LabLayout(root or lab_dir())
        return cls(LabState.load(layout.state_file))

    # ---- what users of the lab need ----------------------------------------------

    @property
    def layout(self) -> LabLayout:
        return LabLayout(Path(self.state.root))

    @property
    def topology(self) -> Topology:
        return Topology(prefix=self.state.prefix, subnet=self.state.subnet)

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig for use *inside the workstation namespace* (server = master_ip)."""
        return self.layout.kubeconfig

    @property
    def host_kubeconfig(self) -> Path:
        """Admin kubeconfig for use in the root namespace, e.g. by pytest itself."""
        return self.layout.host_kubeconfig

    @property
    def ca_cert(self) -> Path:
        """The cluster CA (the apiserver's serving cert chains to it)."""
        return self.layout.ca_cert

    @property
    def master_ip(self) -> str:
        return self.topology.master_ip

    @property
    def workstation_ip(self) -> str:
        return self.topology.workstation_ip

    @property
    def ssh_destination(self) -> str:
        return f"root@{self.master_ip}"

    @property
    def master_ns(self) -> str:
        return self.topology.master_ns

    @property
    def workstation_ns(self) -> str:
        return self.topology.workstation_ns

    def workstation_env(self) -> dict[str, str]:
        """What ``lab exec`` adds to the environment of a workstation command."""
        return {"KUBECONFIG": str(self.kubeconfig), "WEBHOOK_DEV_LAB_SSH": self.ssh_destination}

    def workstation_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in the workstation namespace with ``lab exec``'s environment.

        The ssh client config is bind-mounted over /etc/ssh by ``ip netns exec`` itself,
        so ``ssh "$WEBHOOK_DEV_LAB_SSH"`` (and asyncssh reading /etc/ssh) just works.
        """
        env = [f"{key}={value}" for key, value in self.workstation_env().items()]
        return netns.in_namespace(self.workstation_ns, ["env", *env, *argv])

    def master_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run in the master namespace (as a process on the control-plane node)."""
        env = [f"KUBECONFIG={self.layout.component_kubeconfig(_ADMIN)}"]
        return netns.in_namespace(self.master_ns, ["env", *env, *argv])

    def api_client(self) -> ApiClient:
        """A kubernetes ``ApiClient`` for the root namespace (admin credentials)."""
        from kubernetes import config

        client: ApiClient = config.new_client_from_config(config_file=str(self.host_kubeconfig))
        return client

    # ---- runtime switches ---------------------------------------------------------

    def set_gateway_ports(self, value: configs.GatewayPorts) -> None:
        """Rewrite sshd's GatewayPorts and restart the listener; open sessions survive.

        A restart rather than SIGHUP: sshd's re-exec on SIGHUP leaves a moment where the
        old listener still answers, and a test must not race it. Established SSH
        connections are separate processes and keep the setting they started with.
        """
        if value not in configs.GATEWAY_PORTS_CHOICES:
            choices = ", ".join(configs.GATEWAY_PORTS_CHOICES)
            raise LabError(f"GatewayPorts must be one of {choices}, not {value!r}")
        self.state.gateway_ports = value
        self._write_sshd_config()
        self._restart("sshd")
        self._save()

    def set_aggregator_routing(self, enabled: bool) -> None:
        """Restart kube-apiserver with ``--enable-aggregator-routing`` on or off.

        The controller manager and kube-proxy are restarted too, once the apiserver is
        ready: left alone, their watches reconnect with exponential backoff and new
        Endpoints go unnoticed for 10-20 s; fresh processes list and watch at once.
        Cluster state (etcd) is untouched.
        """
        if self.state.aggregator_routing == enabled and self._alive("kube-apiserver"):
            return
        self.state.aggregator_routing = enabled
        self._restart("kube-apiserver")
        self._save()
        readiness.wait_until(
            lambda: self._check_alive() or self._readiness().ok("/readyz"),
            timeout=READY_TIMEOUT_SECONDS,
            what="kube-apiserver /readyz",
        )
        self._restart("kube-controller-manager")
        self._restart("kube-proxy")
        self.wait_ready()
        self.wait_controllers_caught_up()

    def set_routable(self, enabled: bool) -> None:
        """Let the master open connections to the workstation (``up --direct``), or not.

        Only the workstation's one NAT-like firewall rule changes; open connections stay.
        """
        netns.set_workstation_routable(self.topology, enabled)
        self.state.routable = enabled
        self._save()

    def wait_controllers_caught_up(self, timeout: float = 60.0) -> None:
        """Block until the controller manager and kube-proxy act on new Endpoints again.

        After an apiserver restart their watches reconnect with exponential backoff, so
        for several seconds a new Service's Endpoints are neither mirrored into an
        EndpointSlice (which the apiserver's endpoint resolver reads) nor programmed by
        kube-proxy. A canary Endpoints change, followed through both, is the barrier.
        """
        api = self._readiness()
        port = 30000 + int(time.monotonic() * 1000) % 30000
        base = "/api/v1/namespaces/kube-system"
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": _CANARY},
            "spec": {"ports": [{"name": "canary", "port": 1, "protocol": "TCP"}]},
        }
        endpoints = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": _CANARY},
            "subsets": [
                {"addresses": [{"ip": self.master_ip}], "ports": [{"name": "canary", "port": port}]}
            ],
        }
        api.request("POST", f"{base}/services", service)
        status, body = api.request("PUT", f"{base}/endpoints/{_CANARY}", endpoints)
        if status not in (200, 201):
            raise LabError(f"cannot write the canary Endpoints: {status} {body[:300]}")
        slices = (
            f"/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices"
            f"?labelSelector=kubernetes.io/service-name%3D{_CANARY}"
        )
        readiness.wait_until(
            lambda: f'"port":{port}' in api.get(slices)[1],
            timeout=timeout,
            what="the EndpointSlice mirroring controller",
            hint=f"see {self.layout.log('kube-controller-manager')}",
        )
        destination = f"{self.master_ip}:{port}"
        readiness.wait_until(
            lambda: destination in self.proxy_destinations("kube-system", _CANARY),
            timeout=timeout,
            what="kube-proxy to program a new endpoint",
            hint=f"see {self.layout.log('kube-proxy')}",
        )

    def ssh_session_pids(self) -> list[int]:
        """Per-connection sshd processes (children of the listener) in the master."""
        listener = self.state.pids.get("sshd", 0)
        sessions = []
        for pid in netns.namespace_pids(self.master_ns):
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == listener:
                sessions.append(pid)
        return sessions

    def kill_ssh_sessions(self) -> int:
        """Kill every SSH connection to the master (tunnels drop); return how many."""
        sessions = self.ssh_session_pids()
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(sessions)

    def block_ssh(self) -> None:
        """Silently drop workstation→master:22 packets: a laptop that went to sleep."""
        netns.block_tcp_port(self.topology, SSH_PORT)

    def unblock_ssh(self) -> None:
        netns.unblock_tcp_port(self.topology, SSH_PORT)

    @contextlib.contextmanager
    def ssh_blocked(self) -> Iterator[None]:
        """``with lab.ssh_blocked(): ...`` — the SSH path is a black hole inside the block."""
        self.block_ssh()
        try:
            yield
        finally:
            self.unblock_ssh()

    # ---- the node -------------------------------------------------------------------

    @property
    def has_node(self) -> bool:
        return self.state.node

    @property
    def node_name(self) -> str:
        """The node's Node object; Pods without a nodeSelector land there."""
        return self.topology.node_name

    @property
    def node_ns(self) -> str:
        return self.topology.node_ns

    @property
    def pod_cidr(self) -> str:
        return self.topology.pod_cidr

    def node_ready(self) -> bool:
        """Whether the node's kubelet reports Ready (the Node's Ready condition is True)."""
        if not self.state.node:
            return False
        status, body = self._readiness().get(f"/api/v1/nodes/{self.node_name}")
        if status != 200:
            return False
        conditions = json.loads(body).get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def wait_node_ready(self, timeout: float = NODE_READY_TIMEOUT_SECONDS) -> None:
        if not self.state.node:
            raise LabError(
                "this lab has no node (started with --no-node)",
                hint="`webhook-dev lab down`, then `webhook-dev lab up` (with a node)",
            )
        readiness.wait_until(
            lambda: self._check_alive() or self.node_ready(),
            timeout=timeout,
            what=f"node {self.node_name} to be Ready",
            hint=f"see {self.layout.log('kubelet')} and {self.layout.log('containerd')}",
        )
        self._untaint_ready_node()

    def _untaint_ready_node(self) -> None:
        """Remove the ``not-ready`` taint every new Node gets, once the node is Ready.

        That is the node-lifecycle controller's job, which the lab does not run: it would
        also act on the master's Node, which has no kubelet and never reports Ready, and
        mark the Pods a test binds there not Ready. Until the taint is gone nothing but
        DaemonSet-like Pods would be scheduled.
        """
        path = f"/api/v1/nodes/{self.node_name}"
        status, body = self._readiness().get(path)
        if status != 200:
            raise LabError(f"cannot read Node {self.node_name}: {status} {body[:300]}")
        taints = json.loads(body).get("spec", {}).get("taints") or []
        kept = [t for t in taints if t.get("key") != "node.kubernetes.io/not-ready"]
        if kept == taints:
            return
        status, body = self._readiness().request(
            "PATCH",
            path,
            {"spec": {"taints": kept or None}},
            content_type="application/merge-patch+json",
        )
        if status != 200:
            raise LabError(f"cannot untaint Node {self.node_name}: {status} {body[:300]}")

    def node_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` in the node's network and mount namespaces (as a process on the node)."""
        return node.join_command(self.state.pids["containerd"], argv)

    def node_images(self) -> list[dict[str, Any]]:
        """The images the node's kubelet reports in its Node status (names, sizes)."""
        status, body = self._readiness().get(f"/api/v1/nodes/{self.node_name}")
        if status != 200:
            raise LabError(f"cannot read Node {self.node_name}: {status} {body[:300]}")
        listed: list[dict[str, Any]] = json.loads(body).get("status", {}).get("images", [])
        return listed

    def deploy_sample(self, sample: str, timeout: float = 60.0) -> workloads.DeployedSample:
        """Run ``sample_webhook/deploy/<sample>.yaml`` on the node; return once it serves.

        ``sample`` is ``sidecar-injector``, ``require-limits``,
        ``statefulset-node-selector`` or ``website`` (a CRD with a conversion webhook).
        Without cert-manager the serving certificate comes from the lab's CA (see
        :mod:`webhook_dev.lab.workloads` for the overrides).
        """
        self.wait_node_ready()
        return workloads.deploy_sample(
            self._readiness(),
            sample,
            ca_pem=self.ca_cert.read_bytes(),
            ca_key_pem=self.layout.ca_key.read_bytes(),
            timeout=timeout,
        )

    def delete_sample(self, deployed: workloads.DeployedSample, timeout: float = 60.0) -> None:
        """Delete the sample; return once its namespaces are gone (it can be deployed again)."""
        workloads.delete_sample(self._readiness(), deployed, timeout=timeout)

    # ---- health -------------------------------------------------------------------

    def _readiness(self) -> readiness.ApiReadiness:
        return readiness.ApiReadiness(
            self.topology.master_host_ip,
            APISERVER_PORT,
            self.ca_cert,
            self.layout.client_cert(_ADMIN),
            self.layout.client_key(_ADMIN),
        )

    def _alive(self, component: str) -> bool:
        pid = self.state.pids.get(component)
        return bool(pid) and processes.is_alive(pid or 0)

    @property
    def components(self) -> tuple[str, ...]:
        return COMPONENTS + (NODE_COMPONENTS if self.state.node else ())

    def component_status(self) -> dict[str, bool]:
        """component → running."""
        return {component: self._alive(component) for component in self.components}

    def healthy(self) -> bool:
        return all(self.component_status().values()) and self._readiness().ok("/readyz")

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Block until the apiserver is ready and the cluster is usable for a webhook test:
        default namespaces and service account exist, kube-proxy has programmed rules,
        sshd listens."""
        api = self._readiness()
        deadline = time.monotonic() + timeout

        def remaining() -> float:
            return max(0.1, deadline - time.monotonic())

        def ready(path: str) -> bool:
            self._check_alive()
            return api.ok(path)

        readiness.wait_until(
            lambda: ready("/readyz"),
            timeout=remaining(),
            what="kube-apiserver /readyz",
            hint=f"see {self.layout.logs}",
        )
        for namespace in ("default", "kube-system", "kube-public", "kube-node-lease"):
            path = f"/api/v1/namespaces/{namespace}"
            readiness.wait_until(
                functools.partial(ready, path), timeout=remaining(), what=f"namespace {namespace}"
            )
        readiness.wait_until(
            lambda: ready("/api/v1/namespaces/default/serviceaccounts/default"),
            timeout=remaining(),
            what="service account default/default",
            hint="kube-controller-manager creates it; see its log",
        )
        readiness.wait_until(
            self._proxy_programmed,
            timeout=remaining(),
            what="kube-proxy to program the kubernetes Service",
            hint="see the kube-proxy log",
        )
        readiness.wait_until(
            lambda: readiness.listening(self.master_ns, SSH_PORT),
            timeout=remaining(),
            what="sshd to listen",
        )

    def _check_alive(self) -> bool:
        """Raise with the log tail of a component that was started and has exited."""
        dead = [name for name in self.state.pids if not self._alive(name)]
        if dead:
            log = self.layout.log(dead[0])
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise LabError(
                f"{', '.join(dead)} exited during lab start; last log:\n{tail}",
                hint=f"see {self.layout.logs}",
            )
        return False

    def _proxy_programmed(self) -> bool:
        return bool(self.proxy_destinations("default", "kubernetes"))

    def proxy_destinations(self, namespace: str, service: str) -> list[str]:
        """``ip:port`` endpoints kube-proxy currently DNATs ``namespace/service`` to.

        What a test waits for after changing Endpoints, before it expects the apiserver
        (in ClusterIP mode) to reach them.
        """
        rules = netns.run(
            netns.in_namespace(self.master_ns, ["iptables-save", "-t", "nat"]), check=False
        ).stdout
        return netns.dnat_destinations(rules, namespace, service)

    # ---- internals ----------------------------------------------------------------

    def _save(self) -> None:
        self.state.save(self.layout.state_file)

    def _write_files(self) -> None:
        layout, topology = self.layout, self.topology
        for directory in (layout.pki, layout.logs, layout.ssh, layout.etcd_data):
            ensure_private_dir(directory)
        ca = certs.new_ca("webhook-dev-lab-ca", valid_days=365)
        (layout.ca_cert).write_bytes(ca.cert_pem)
        write_private(layout.ca_key, ca.key_pem)
        dns, ips = topology.apiserver_sans
        serving = certs.new_serving_cert(ca, dns_names=dns, ip_addresses=ips)
        layout.apiserver_cert.write_bytes(serving.cert_pem)
        write_private(layout.apiserver_key, serving.key_pem)
        signing_key = certs.new_private_key_pem()
        write_private(layout.service_account_key, signing_key)
        layout.service_account_pub.write_bytes(certs.public_key_pem(signing_key))

        users = {
            _ADMIN: ("webhook-dev-lab-admin", ("system:masters",)),
            "kube-controller-manager": ("system:kube-controller-manager", ()),
            "kube-proxy": ("system:kube-proxy", ()),
        }
        if self.state.node:
            users.update(
                {
                    "kube-scheduler": ("system:kube-scheduler", ()),
                    # The Node authorizer's naming: this kubelet may touch its own Node only.
                    "kubelet": (f"system:node:{topology.node_name}", ("system:nodes",)),
                    "kube-apiserver-kubelet-client": (
                        "kube-apiserver-kubelet-client",
                        ("system:masters",),
                    ),
                }
            )
        for user, (common_name, groups) in users.items():
            client = certs.new_client_cert(ca, common_name=common_name, organizations=groups)
            layout.client_cert(user).write_bytes(client.cert_pem)
            write_private(layout.client_key(user), client.key_pem)
            local = configs.kubeconfig(
                server=f"https://127.0.0.1:{APISERVER_PORT}",
                ca_pem=ca.cert_pem,
                user=user,
                cert_pem=client.cert_pem,
                key_pem=client.key_pem,
                context="webhook-dev-lab",
            )
            if user == "kubelet":  # in the node, which reaches the apiserver via the master
                local = local.replace(
                    f"https://127.0.0.1:{APISERVER_PORT}",
                    f"https://{topology.master_ip}:{APISERVER_PORT}",
                )
            write_private(layout.component_kubeconfig(user), local.encode())
            if user == "kube-proxy" and self.state.node:
                remote = local.replace(
                    f"https://127.0.0.1:{APISERVER_PORT}",
                    f"https://{topology.master_ip}:{APISERVER_PORT}",
                )
                write_private(layout.component_kubeconfig("kube-proxy-node"), remote.encode())
            if user == _ADMIN:
                for path, server in (
                    (layout.kubeconfig, topology.master_ip),
                    (layout.host_kubeconfig, topology.master_host_ip),
                ):
                    text = configs.kubeconfig(
                        server=f"https://{server}:{APISERVER_PORT}",
                        ca_pem=ca.cert_pem,
                        user=user,
                        cert_pem=client.cert_pem,
                        key_pem=client.key_pem,
                        context="webhook-dev-lab",
                    )
                    write_private(path, text.encode())
        layout.kube_proxy_config.write_text(
            configs.kube_proxy_config(
                kubeconfig_path=str(layout.component_kubeconfig("kube-proxy")),
                hostname=self.master_ns,
                node_ip=self.master_ip,
            )
        )

        if self.state.node:
            self._write_node_files(ca)

        host_key = SSHKeyPair.create("webhook-dev-lab-host")
        write_private(layout.ssh_host_key, host_key.private_openssh)
        layout.ssh_host_key.with_suffix(".pub").write_text(host_key.public_line + "\n")
        client_key = SSHKeyPair.create("webhook-dev-lab-workstation")
        write_private(layout.client_identity, client_key.private_openssh)
        write_private(layout.authorized_keys, (client_key.public_line + "\n").encode())
        self._write_sshd_config()

    def _write_node_files(self, ca: certs.Issued) -> None:
        layout, topology = self.layout, self.topology
        for directory in (layout.node, layout.cni_conf_dir, layout.cni_ipam_dir, layout.pod_logs):
            directory.mkdir(parents=True, exist_ok=True)
        serving = certs.new_serving_cert(
            ca, dns_names=(topology.node_name,), ip_addresses=(topology.node_ip,)
        )
        layout.kubelet_cert.write_bytes(serving.cert_pem)
        write_private(layout.kubelet_key, serving.key_pem)
        layout.containerd_config.write_text(
            node_configs.containerd_config(layout, sandbox_image=images.PAUSE_IMAGE)
        )
        (layout.cni_conf_dir / "10-webhook-dev-lab.conflist").write_text(
            node_configs.cni_conflist(layout, topology)
        )
        layout.kubelet_config.write_text(
            node_configs.kubelet_config(layout, topology, client_ca=str(layout.ca_cert))
        )
        node.write_kernel_tunables(layout)
        # The node's own kube-proxy, as on every node: Pods reach Services (the apiserver
        # at 10.96.0.1, as in-cluster clients do) through its rules in the node.
        layout.node_kube_proxy_config.write_text(
            configs.kube_proxy_config(
                kubeconfig_path=str(layout.component_kubeconfig("kube-proxy-node")),
                hostname=topology.node_name,
                node_ip=topology.node_ip,
                cluster_cidr=topology.pod_cidr,
            )
        )

    def _write_sshd_config(self) -> None:
        layout = self.layout
        ensure_private_dir(layout.master_home)
        layout.sshd_config.write_text(
            configs.sshd_config(
                listen_address=self.master_ip,
                port=SSH_PORT,
                host_key=str(layout.ssh_host_key),
                authorized_keys=str(layout.authorized_keys),
                pid_file=str(layout.ssh / "sshd.pid"),
                gateway_ports=self.state.gateway_ports,  # type: ignore[arg-type]
                session_home=str(layout.master_home),
            )
        )

    def _write_workstation_ssh_config(self) -> None:
        """ssh client config for every ssh in the workstation, via /etc/netns/<ns>/ssh."""
        layout = self.layout
        ssh_dir = Path(f"/etc/netns/{self.workstation_ns}/ssh")
        ssh_dir.mkdir(parents=True, exist_ok=True)
        (ssh_dir / "ssh_config").write_text(
            configs.workstation_ssh_config(master_ip=self.master_ip)
        )
        host_public = layout.ssh_host_key.with_suffix(".pub").read_text()
        (ssh_dir / "ssh_known_hosts").write_text(
            configs.known_hosts_line(
                host=self.master_ip, port=SSH_PORT, public_key_line=host_public
            )
        )
        identity = Path(configs.WORKSTATION_IDENTITY).name
        write_private(ssh_dir / identity, layout.client_identity.read_bytes())

    def _argv(self, component: str) -> list[str]:
        layout, found = self.layout, self.state.binaries
        if component == "etcd":
            return commands.etcd_argv(Path(found["etcd"]), layout)
        if component == "kube-apiserver":
            return commands.apiserver_argv(
                Path(found["kube-apiserver"]),
                layout,
                self.topology,
                aggregator_routing=self.state.aggregator_routing,
                node=self.state.node,
            )
        if component == "kube-controller-manager":
            return commands.controller_manager_argv(
                Path(found["kube-controller-manager"]), layout, node=self.state.node
            )
        if component == "kube-scheduler":
            return node_configs.scheduler_argv(
                found["kube-scheduler"], str(layout.component_kubeconfig("kube-scheduler"))
            )
        if component == "kube-proxy":
            return commands.kube_proxy_argv(Path(found["kube-proxy"]), layout)
        if component == "kube-proxy-node":
            return [found["kube-proxy"], f"--config={layout.node_kube_proxy_config}", "--v=1"]
        if component == "sshd":
            return commands.sshd_argv(Path(SSHD), layout)
        raise ValueError(component)

    def _node_command(self, component: str) -> list[str]:
        """containerd and the kubelet enter the node's namespaces themselves (node.py)."""
        layout, topology = self.layout, self.topology
        if component == "containerd":
            return node.containerd_command(
                layout, topology, node_configs.containerd_argv("containerd", layout)
            )
        kubelet = node_configs.kubelet_argv(
            self.state.binaries["kubelet"],
            layout,
            topology,
            str(layout.component_kubeconfig("kubelet")),
        )
        return node.join_command(self.state.pids["containerd"], kubelet)

    def _spawn(self, component: str) -> None:
        if component == "sshd":
            # Privilege separation directory; Debian's unit creates it, a bare machine may not.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        log = self.layout.log(component)
        if component in ("containerd", "kubelet"):
            pid = processes.spawn_command(self._node_command(component), log)
        elif component == "kube-proxy-node":
            pid = processes.spawn(self.node_ns, self._argv(component), log)
        else:
            pid = processes.spawn(self.master_ns, self._argv(component), log)
        self.state.pids[component] = pid
        self._save()

    def _start_components(self, archive: images.ImageArchive | None = None) -> None:
        # etcd, the apiserver and sshd at once (the apiserver retries etcd). The controller
        # manager exits if RBAC is not bootstrapped yet when it reads its authentication
        # config, so it and kube-proxy wait for /readyz, which includes that hook. The
        # node's containerd starts with them and gets the images while the apiserver
        # comes up; the kubelet waits for /readyz too (it would only retry until then).
        for component in ("etcd", "kube-apiserver", "sshd"):
            self._spawn(component)
        importing = None
        if archive is not None:
            self._spawn("containerd")
            importing = self._start_image_import(archive)
        api = self._readiness()
        readiness.wait_until(
            lambda: self._check_alive() or api.ok("/readyz"),
            timeout=READY_TIMEOUT_SECONDS,
            what="kube-apiserver /readyz",
            hint=f"see {self.layout.log('kube-apiserver')}",
        )
        self._register_node()
        for component in ("kube-controller-manager", "kube-proxy"):
            self._spawn(component)
        if archive is not None and importing is not None:
            for component in ("kube-scheduler", "kubelet", "kube-proxy-node"):
                self._spawn(component)
            # The kubelet registers and turns Ready without images; Pods need them.
            images.finish_import(importing, archive.path)
            self.state.images = {image.reference: image.digest for image in archive.images}
            self._save()

    def _start_image_import(self, archive: images.ImageArchive) -> subprocess.Popen[str]:
        socket = self.layout.containerd_socket
        readiness.wait_until(
            lambda: self._check_alive() or socket.exists(),
            timeout=READY_TIMEOUT_SECONDS,
            what="containerd to listen",
            hint=f"see {self.layout.log('containerd')}",
        )
        return images.start_import("ctr", socket, archive.path)

    def _register_node(self) -> None:
        """Create the master's Node object, as a kubelet would on registration.

        kube-proxy waits 30 s for its Node (to learn the node's IPs) and then carries on
        with guesses; registering it first makes startup fast and its view accurate.
        Nothing else acts on the Node: no kubelet, scheduler or node-lifecycle controller.
        """
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.master_ns,
                "labels": {
                    "kubernetes.io/hostname": self.master_ns,
                    "node-role.kubernetes.io/control-plane": "",
                },
            },
            # With a scheduler, Pods must go to the node, as kubeadm taints control planes.
            "spec": {
                "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
                if self.state.node
                else []
            },
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": self.master_ip},
                    {"type": "Hostname", "address": self.master_ns},
                ]
            },
        }
        status, body = self._readiness().request("POST", "/api/v1/nodes", node)
        if status not in (201, 409):
            raise LabError(f"cannot register Node {self.master_ns}: {status} {body[:300]}")

    def _restart(self, component: str) -> None:
        pid = self.state.pids.get(component)
        if pid and processes.in_netns(pid, self.master_ns):
            # Short grace: the apiserver drains watches for longer than a test should wait,
            # and all state is in etcd, which keeps running.
            processes.terminate([pid], grace_seconds=1.0)
        self._spawn(component)
        if component == "sshd":
            readiness.wait_until(
                lambda: readiness.listening(self.master_ns, SSH_PORT),
                timeout=10,
                what="sshd to listen again",
            )


def _refuse_if_present(layout: LabLayout, topology: Topology) -> None:
    leftovers = [
        ns for ns in netns.list_namespaces() if ns in (topology.master_ns, topology.workstation_ns)
    ]
    if layout.state_file.exists() or leftovers:
        raise LabError(
            "a lab is already running (or left over)"
            + (f": namespaces {', '.join(leftovers)}" if leftovers else ""),
            hint="use it (`webhook-dev lab status`), or remove it with `webhook-dev lab down`",
        )


def teardown(root: Path | None = None, topology: Topology | None = None) -> list[str]:
    """Remove every process, namespace, link, /etc/netns dir and file of the lab.

    Idempotent, and works from the state file, from the naming prefix, or both, so it also
    cleans up after ``lab up`` was killed at any point. Returns what it removed.
    """
    layout = LabLayout(root or lab_dir())
    removed: list[str] = []
    state: LabState | None = None
    with contextlib.suppress(LabError):
        state = LabState.load(layout.state_file)
    if topology is None:
        topology = Topology(state.prefix, state.subnet) if state else Topology.from_env()
    namespaces = (topology.master_ns, topology.workstation_ns, topology.node_ns)

    # Processes first: everything in our namespaces (`ip netns pids`), which covers the
    # recorded pids, what a killed `lab up` left, and whatever a user started with
    # `lab exec`; and every process in the node's cgroups (the Pods' own, each in a
    # network namespace of its own). Loop, because sshd may fork while we kill.
    for _ in range(10):
        pids = [pid for ns in namespaces for pid in netns.namespace_pids(ns)]
        pids = sorted({*pids, *node.cgroup_pids(topology)})
        if not pids:
            break
        # The lab's data is being thrown away: no need to wait out graceful shutdowns.
        processes.terminate(pids, grace_seconds=1.0)
        removed.append(f"{len(pids)} process(es)")
    # Killed Pods whose shims died too are zombies of the machine's init until it reaps
    # them; they still count as the cgroups' members.
    # Killed Pods whose shims died too are zombies until the machine's init reaps them
    # (here within seconds); wait for that, so `down` returns with nothing of the lab left.
    with contextlib.suppress(LabError):
        readiness.wait_until(
            lambda: not node.member_pids(topology), timeout=15, what="the Pods' processes"
        )
    # With its processes gone, the node's mount namespace (and every mount in it) is gone;
    # what else it leaves on the machine goes now, while the state dir still names it.
    removed.extend(node.remove_leftovers(layout, topology))
    removed.extend(f"mount {point}" for point in node.unmount_under(layout.root))
    for namespace in namespaces:
        if netns.delete_namespace(namespace):
            removed.append(f"netns {namespace}")
    if netns.delete_link(topology.host_link):
        removed.append(f"link {topology.host_link}")
    for directory in topology.netns_etc_dirs:
        if os.path.isdir(directory):
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    if layout.root.exists():
        shutil.rmtree(layout.root, ignore_errors=True)
        removed.append(str(layout.root))
    return removed


def summary(lab: Lab) -> dict[str, Any]:
    """A plain description of a running lab, for ``lab status --json`` and ``lab up``."""
    return {
        "master_ip": lab.master_ip,
        "workstation_ip": lab.workstation_ip,
        "ssh_destination": lab.ssh_destination,
        "kubeconfig": str(lab.kubeconfig),
        "host_kubeconfig": str(lab.host_kubeconfig),
        "gateway_ports": lab.state.gateway_ports,
        "aggregator_routing": lab.state.aggregator_routing,
        "routable": lab.state.routable,
        "components": {
            name: {"pid": lab.state.pids.get(name), "running": running}
            for name, running in lab.component_status().items()
        },
        "binaries": lab.state.binaries,
        "logs": str(lab.layout.logs),
        "node": (
            {
                "name": lab.node_name,
                "ip": lab.topology.node_ip,
                "pod_cidr": lab.pod_cidr,
                "images": lab.state.images,
            }
            if lab.has_node
            else None
        ),
    }
