"""Run the samples' ``deploy/*.yaml`` on the lab's node, as a user's cluster would.

The manifests are applied as they are (server-side apply, so running it twice is safe),
with two documented overrides for what a lab without a registry or cert-manager lacks:

* cert-manager absent (no ``certificates.cert-manager.io`` API): its ``Issuer`` and
  ``Certificate`` are skipped; the Secret the Certificate would have produced is created
  from the lab's CA (SANs from the Certificate's ``dnsNames``), and the webhook
  configuration's ``caBundle`` (and a CRD's conversion ``caBundle``, the website sample's)
  is the lab's CA, as cert-manager's CA injector would set.
* ``SIDECAR_IMAGE``: the sidecar injector's default (``nginx:1.27-alpine``) is in no
  registry here; the lab's Debian nginx image is set instead.

The samples' own image is built under the name the manifests use (``sample-webhooks:dev``),
so their Deployments need no override.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from webhook_dev.errors import LabError
from webhook_dev.lab.images import NGINX_IMAGE
from webhook_dev.lab.readiness import ApiReadiness
from webhook_dev.tls import certs

SAMPLES = ("sidecar-injector", "require-limits", "statefulset-node-selector", "website")
FIELD_MANAGER = "webhook-dev-lab"
CRD_KIND = "CustomResourceDefinition"
CLUSTER_SCOPED = frozenset(
    {"Namespace", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", CRD_KIND}
)
CERT_MANAGER_KINDS = frozenset({"Issuer", "Certificate"})
WEBHOOK_KINDS = frozenset({"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"})


@dataclass(frozen=True)
class DeployedSample:
    """What :func:`deploy_sample` made: where the in-cluster replica serves."""

    sample: str
    namespace: str
    service: str
    deployment: str
    webhook_kind: str  # MutatingWebhookConfiguration or ValidatingWebhookConfiguration
    webhook_configuration: str
    pod_ips: tuple[str, ...]
    objects: tuple[tuple[str, str, str], ...]  # (kind, namespace, name) in apply order


def sample_manifests(sample: str) -> list[dict[str, Any]]:
    """The documents of ``sample_webhook/deploy/<sample>.yaml``."""
    if sample not in SAMPLES:
        raise LabError(
            f"no sample named {sample!r}",
            hint=f"choose one of {', '.join(SAMPLES)}",
        )
    text = resources.files("sample_webhook").joinpath("deploy", f"{sample}.yaml").read_text()
    return [document for document in yaml.safe_load_all(text) if document]


def object_path(document: dict[str, Any]) -> str:
    """The API path of one object: /api/v1/... or /apis/<group>/<version>/..."""
    api_version, kind = document["apiVersion"], document["kind"]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    plural = kind.lower() + ("es" if kind.endswith("s") else "s")
    name = document["metadata"]["name"]
    if kind in CLUSTER_SCOPED:
        return f"{base}/{plural}/{name}"
    namespace = document["metadata"].get("namespace", "default")
    return f"{base}/namespaces/{namespace}/{plural}/{name}"


def with_overrides(
    documents: list[dict[str, Any]], *, ca_pem: bytes, ca_key_pem: bytes, cert_manager: bool
) -> list[dict[str, Any]]:
    """The documents to apply on the lab (see the module docstring); pure."""
    result: list[dict[str, Any]] = []
    ca = certs.Issued(ca_pem, ca_key_pem)
    for document in documents:
        kind = document["kind"]
        if kind in CERT_MANAGER_KINDS and not cert_manager:
            if kind == "Certificate":
                result.append(_tls_secret(document, ca))
            continue
        document = json.loads(json.dumps(document))  # a copy we may change
        if kind in WEBHOOK_KINDS and not cert_manager:
            document["metadata"].get("annotations", {}).pop("cert-manager.io/inject-ca-from", None)
            for webhook in document.get("webhooks", []):
                webhook["clientConfig"]["caBundle"] = base64.b64encode(ca_pem).decode()
        if kind == CRD_KIND and not cert_manager:  # the website sample's conversion webhook
            document["metadata"].get("annotations", {}).pop("cert-manager.io/inject-ca-from", None)
            conversion = document["spec"].get("conversion", {}).get("webhook")
            if conversion:
                conversion["clientConfig"]["caBundle"] = base64.b64encode(ca_pem).decode()
        if kind == "Deployment":
            for container in document["spec"]["template"]["spec"]["containers"]:
                for variable in container.get("env", []):
                    if variable["name"] == "SIDECAR_IMAGE":
                        variable["value"] = NGINX_IMAGE
        result.append(document)
    # Secrets before the Deployments that mount them: the Pod starts at once.
    return sorted(result, key=lambda d: d["kind"] not in ("Namespace", "Secret"))


def _tls_secret(certificate: dict[str, Any], ca: certs.Issued) -> dict[str, Any]:
    spec = certificate["spec"]
    serving = certs.new_serving_cert(ca, dns_names=spec["dnsNames"])
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": spec["secretName"],
            "namespace": certificate["metadata"]["namespace"],
            "labels": {"webhook-dev.io/lab": "serving-certificate"},
        },
        "data": {
            "tls.crt": base64.b64encode(serving.cert_pem).decode(),
            "tls.key": base64.b64encode(serving.key_pem).decode(),
            "ca.crt": base64.b64encode(ca.cert_pem).decode(),
        },
    }


def _apply(api: ApiReadiness, document: dict[str, Any]) -> None:
    query = urllib.parse.urlencode({"fieldManager": FIELD_MANAGER, "force": "true"})
    status, body = api.request(
        "PATCH",
        f"{object_path(document)}?{query}",
        document,
        timeout=10,
        content_type="application/apply-patch+yaml",  # JSON is YAML
    )
    if status not in (200, 201):
        meta = document["metadata"]
        raise LabError(
            f"cannot apply {document['kind']} {meta.get('namespace', '')}/{meta['name']}: "
            f"{status} {body[:400]}"
        )


def has_cert_manager(api: ApiReadiness) -> bool:
    return api.get("/apis/cert-manager.io/v1")[0] == 200


def deploy_sample(
    api: ApiReadiness,
    sample: str,
    *,
    ca_pem: bytes,
    ca_key_pem: bytes,
    timeout: float = 60.0,
) -> DeployedSample:
    """Apply one sample's manifests and wait until its Deployment's replicas are Ready."""
    documents = with_overrides(
        sample_manifests(sample),
        ca_pem=ca_pem,
        ca_key_pem=ca_key_pem,
        cert_manager=has_cert_manager(api),
    )
    for document in documents:
        _apply(api, document)
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    service = next(d for d in documents if d["kind"] == "Service")
    webhook = next(d for d in documents if d["kind"] in WEBHOOK_KINDS)
    namespace = deployment["metadata"]["namespace"]
    pod_ips = wait_deployment_ready(api, namespace, deployment["metadata"]["name"], timeout)
    return DeployedSample(
        sample=sample,
        namespace=namespace,
        service=service["metadata"]["name"],
        deployment=deployment["metadata"]["name"],
        webhook_kind=webhook["kind"],
        webhook_configuration=webhook["metadata"]["name"],
        pod_ips=pod_ips,
        objects=tuple(
            (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
            for d in documents
        ),
    )


def wait_deployment_ready(
    api: ApiReadiness, namespace: str, name: str, timeout: float = 60.0
) -> tuple[str, ...]:
    """Block until every replica of the Deployment is Ready; return their Pod IPs."""
    deadline = time.monotonic() + timeout
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    last = ""
    while time.monotonic() < deadline:
        status, body = api.get(path)
        if status == 200:
            document = json.loads(body)
            wanted = document["spec"].get("replicas", 1)
            ready = document.get("status", {}).get("readyReplicas", 0)
            last = f"{ready}/{wanted} ready"
            if ready >= wanted:
                return ready_pod_ips(api, namespace, document["spec"]["selector"]["matchLabels"])
        time.sleep(0.2)
    raise LabError(
        f"Deployment {namespace}/{name} is not ready after {timeout:.0f}s ({last or 'absent'})",
        hint=f"kubectl -n {namespace} describe pods; the kubelet's log is in the lab's logs",
    )


def ready_pod_ips(api: ApiReadiness, namespace: str, labels: dict[str, str]) -> tuple[str, ...]:
    selector = urllib.parse.quote(",".join(f"{k}={v}" for k, v in sorted(labels.items())))
    status, body = api.get(f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}")
    if status != 200:
        raise LabError(f"cannot list Pods in {namespace}: {status} {body[:300]}")
    ips = []
    for pod in json.loads(body)["items"]:
        conditions = pod.get("status", {}).get("conditions", [])
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            ips.append(pod["status"]["podIP"])
    return tuple(sorted(ips))


def delete_sample(api: ApiReadiness, deployed: DeployedSample, timeout: float = 60.0) -> None:
    """Delete what :func:`deploy_sample` applied (its namespaces take the rest with them).

    Returns once the namespaces are gone: deploying the sample again right after would
    otherwise be refused ("namespace ... is being terminated") while the node stops its Pods.
    """
    namespaces = []
    api_versions = {kind: "admissionregistration.k8s.io/v1" for kind in WEBHOOK_KINDS}
    api_versions |= {"Namespace": "v1", CRD_KIND: "apiextensions.k8s.io/v1"}
    for kind, namespace, name in reversed(deployed.objects):
        if kind in api_versions:
            document = {
                "apiVersion": api_versions[kind],
                "kind": kind,
                "metadata": {"name": name, "namespace": namespace},
            }
            api.request("DELETE", object_path(document), timeout=10)
            if kind == "Namespace":
                namespaces.append(name)
    deadline = time.monotonic() + timeout
    remaining = namespaces
    while remaining:
        remaining = [n for n in remaining if api.get(f"/api/v1/namespaces/{n}")[0] != 404]
        if remaining and time.monotonic() > deadline:
            raise LabError(
                f"namespaces {', '.join(remaining)} are still terminating after {timeout:.0f}s",
                hint=f"kubectl get namespace {remaining[0]} -o yaml shows what holds it",
            )
        if remaining:
            time.sleep(0.2)
