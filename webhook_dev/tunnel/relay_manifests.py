"""The relay's ConfigMap and Pod as manifests, and what ``up --relay`` needs to be allowed. Pure.

The Pod is built to run in a PodSecurity ``restricted`` namespace whenever the flags allow:
non-root (65532, the distroless "nonroot"), every capability dropped, no privilege
escalation, RuntimeDefault seccomp, a read-only root filesystem (the program runs from
the ConfigMap with ``PYTHONDONTWRITEBYTECODE``), no service-account token (the relay
never talks to the API). Binding a port below 1024 as non-root:

* in the Pod's own network namespace the Pod sets the namespaced sysctl
  ``net.ipv4.ip_unprivileged_port_start`` to the port, one of Kubernetes' "safe" sysctls
  that the kubelet allows by default and PodSecurity baseline and restricted accept;
* with ``--relay-host-network`` there is no namespace of its own to set it in (and
  ``hostNetwork`` is outside baseline anyway): the relay runs as root with only
  ``NET_BIND_SERVICE`` (a non-root process does not get an added capability in its
  effective set), still read-only and without privilege escalation. Choose a port of
  1024 or more to keep it non-root.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webhook_dev.tunnel import relay_program

Json = dict[str, Any]

#: Docker Hub's official image: pullable from any cluster with internet access, python3 on
#: the PATH. Clusters that pull only from a private registry pass ``--relay-image``.
DEFAULT_IMAGE = "docker.io/library/python:3.12-slim"
MANAGED_LABEL = "app.kubernetes.io/managed-by"
COMPONENT_LABEL = "app.kubernetes.io/component"
RELAY_LABEL = "webhook-dev/relay"
PROGRAM_KEY = "relay.py"
NONROOT = 65532


@dataclass(frozen=True)
class RelaySpec:
    """Where and how the relay runs; ``up`` fills it from flags and the cluster.

    :param namespace: the webhook Service's namespace (the relay's Pod and ConfigMap).
    :param relay_id: names the objects (``webhook-dev-relay-<id>``) and labels them.
    :param port: where the apiserver dials (the Endpoints' port).
    :param host_network: the node's network (the apiserver dials the node's IP).
    :param subject: ``NS/NAME`` of what is redirected, for people reading the objects.
    """

    namespace: str
    relay_id: str
    image: str = DEFAULT_IMAGE
    port: int = relay_program.DEFAULT_PORT
    host_network: bool = False
    control_port: int = relay_program.DEFAULT_CONTROL_PORT
    idle_seconds: float = relay_program.DEFAULT_IDLE_SECONDS
    subject: str = ""
    pull_policy: str = "IfNotPresent"

    @property
    def name(self) -> str:
        return f"webhook-dev-relay-{self.relay_id}"

    @property
    def core(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}"

    @property
    def runs_as_root(self) -> bool:
        return self.host_network and self.port < 1024


def labels(spec: RelaySpec) -> dict[str, str]:
    return {MANAGED_LABEL: "webhook-dev", COMPONENT_LABEL: "relay", RELAY_LABEL: spec.relay_id}


def _metadata(spec: RelaySpec) -> Json:
    return {
        "name": spec.name,
        "namespace": spec.namespace,
        "labels": labels(spec),
        "annotations": {
            "webhook-dev/description": "webhook-dev's relay for a redirect of "
            f"{spec.subject or spec.namespace}; `webhook-dev down` removes it, and it exits "
            f"by itself after {spec.idle_seconds:.0f} s without a client.",
        },
    }


def config_map(spec: RelaySpec, program: str) -> Json:
    """The ConfigMap holding the relay program."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(spec),
        "data": {PROGRAM_KEY: program},
    }


def pod(spec: RelaySpec, config_map_uid: str | None = None) -> Json:
    """The relay Pod; owned by its ConfigMap (when its uid is known), so deleting the
    ConfigMap alone also removes the Pod through the garbage collector."""
    metadata = _metadata(spec)
    if config_map_uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": spec.name,
                "uid": config_map_uid,
                "blockOwnerDeletion": False,
            }
        ]
    if spec.runs_as_root:
        user: Json = {"runAsNonRoot": False, "runAsUser": 0, "runAsGroup": 0}
        capabilities: Json = {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
    else:
        user = {"runAsNonRoot": True, "runAsUser": NONROOT, "runAsGroup": NONROOT}
        capabilities = {"drop": ["ALL"]}
    pod_security: Json = {**user, "seccompProfile": {"type": "RuntimeDefault"}}
    if spec.port < 1024 and not spec.host_network:
        pod_security["sysctls"] = [
            {"name": "net.ipv4.ip_unprivileged_port_start", "value": str(spec.port)}
        ]
    command = [
        "python3",
        f"/relay/{PROGRAM_KEY}",
        "--port",
        str(spec.port),
        "--control-port",
        str(spec.control_port),
        "--idle-seconds",
        str(spec.idle_seconds),
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "hostNetwork": spec.host_network,
            "terminationGracePeriodSeconds": 1,
            "securityContext": pod_security,
            "containers": [
                {
                    "name": "relay",
                    "image": spec.image,
                    "imagePullPolicy": spec.pull_policy,
                    "command": command,
                    "env": [
                        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
                        {"name": "PYTHONUNBUFFERED", "value": "1"},
                    ],
                    "ports": [{"name": "relay", "containerPort": spec.port, "protocol": "TCP"}],
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "32Mi"},
                        "limits": {"memory": "128Mi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": capabilities,
                    },
                    "volumeMounts": [{"name": "program", "mountPath": "/relay", "readOnly": True}],
                }
            ],
            "volumes": [{"name": "program", "configMap": {"name": spec.name}}],
        },
    }


@dataclass(frozen=True)
class Permission:
    """One verb on one resource that ``up --relay`` needs, for SelfSubjectAccessReview."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespaced: bool = True
    why: str = ""

    def __str__(self) -> str:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        group = f".{self.group}" if self.group else ""
        return f"{self.verb} {resource}{group}"


ADMISSION = "admissionregistration.k8s.io"
DISCOVERY = "discovery.k8s.io"

#: What ``up --relay`` does, verb by verb (``doctor --relay`` asks for each).
RELAY_PERMISSIONS: tuple[Permission, ...] = (
    Permission("create", "configmaps", why="ship the relay program"),
    Permission("delete", "configmaps", why="remove it on down"),
    Permission("create", "pods", why="start the relay"),
    Permission("get", "pods", why="learn the relay's IP and state"),
    Permission("delete", "pods", why="remove the relay on down"),
    Permission(
        "create",
        "pods",
        subresource="portforward",
        why="reach the relay (SPDY, and WebSocket since Kubernetes 1.35)",
    ),
    Permission("get", "pods", subresource="portforward", why="reach the relay (WebSocket)"),
    Permission("get", "services", why="read the webhook's Service"),
    Permission("update", "services", why="remove its selector during the session"),
    Permission("update", "endpoints", why="point it at the relay"),
    Permission("create", "endpointslices", group=DISCOVERY, why="our slice for kube-proxy"),
    Permission("delete", "endpointslices", group=DISCOVERY, why="remove our slice on down"),
    Permission("update", "endpointslices", group=DISCOVERY, why="empty the controller's"),
    Permission(
        "update",
        "mutatingwebhookconfigurations",
        group=ADMISSION,
        namespaced=False,
        why="caBundle and failurePolicy of the entries",
    ),
    Permission(
        "update",
        "validatingwebhookconfigurations",
        group=ADMISSION,
        namespaced=False,
        why="caBundle and failurePolicy of the entries",
    ),
    Permission(
        "create",
        "validatingwebhookconfigurations",
        group=ADMISSION,
        namespaced=False,
        why="the session's record (journal and lock)",
    ),
    Permission(
        "delete",
        "validatingwebhookconfigurations",
        group=ADMISSION,
        namespaced=False,
        why="drop the record on down",
    ),
)


def access_review(permission: Permission, namespace: str) -> Json:
    """A SelfSubjectAccessReview asking whether the caller may do ``permission``."""
    attributes: Json = {
        "verb": permission.verb,
        "group": permission.group,
        "resource": permission.resource,
    }
    if permission.subresource:
        attributes["subresource"] = permission.subresource
    if permission.namespaced:
        attributes["namespace"] = namespace
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
