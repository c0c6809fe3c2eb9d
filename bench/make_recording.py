"""Write a synthetic recording of realistic admission reviews, fast (a benchmark input).

Pods with two to four containers (env, ports, resources) and Secrets, CREATE and UPDATE
(with oldObject), mostly allowed with a JSON Patch, some denied, a few slow, spread over
namespaces and users, one exchange a line in the recording format version 1
(``docs/recording-format.md``), exactly what ``serve`` writes. About 2 KB a line.

Run: ``.venv/bin/python bench/make_recording.py OUT.jsonl --exchanges 1000000``
(about 20 s a million here). ``--seed`` makes the same file again.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

NAMESPACES = ["default", "team-a", "team-b", "payments", "search", "kube-system", "batch"]
USERS = [
    "system:serviceaccount:kube-system:replicaset-controller",
    "system:serviceaccount:kube-system:job-controller",
    "alice@example.com",
    "bob@example.com",
    "system:serviceaccount:argocd:argocd-application-controller",
]
IMAGES = ["nginx:1.27", "registry.example.com/team/api:2.4.1", "busybox:1.36", "redis:7.2"]
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# Answers are what sample_webhook.sidecar_injector gives, so replaying against it passes
# (except the denied calls, which stand for another webhook's verdicts).
from sample_webhook.sidecar_injector import SKIPPED_NAMESPACES, sidecar_patch  # noqa: E402


def pod(name: str, namespace: str, rng: random.Random) -> dict[str, Any]:
    containers = [
        {
            "name": f"app-{i}",
            "image": rng.choice(IMAGES),
            "env": [{"name": f"SETTING_{j}", "value": f"value-{i}-{j}"} for j in range(3)],
            "ports": [{"containerPort": 8080 + i, "protocol": "TCP"}],
            "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
        }
        for i in range(rng.randint(2, 4))
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": name.rsplit("-", 1)[0], "tier": rng.choice(["web", "api"])},
        },
        "spec": {"containers": containers},
    }


def secret(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        # As serve redacts a Secret (webhook_dev.recording.redaction.REDACTED_PREFIX).
        "data": {"password": "webhook-dev:redacted:hmac-sha256:" + "0" * 24},
    }


def exchange_line(number: int, started: datetime, rng: random.Random) -> str:
    namespace = rng.choice(NAMESPACES)
    is_secret = rng.random() < 0.12
    kind = "Secret" if is_secret else "Pod"
    name = f"{'creds' if is_secret else rng.choice(['web', 'api', 'worker', 'bad'])}-{number}"
    operation = "UPDATE" if rng.random() < 0.3 else "CREATE"
    obj = secret(name, namespace) if is_secret else pod(name, namespace, rng)
    uid = f"{number:08x}-5a1e-4c0d-9b7e-{rng.getrandbits(48):012x}"
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": kind.lower() + "s"},
        "namespace": namespace,
        "name": name,
        "operation": operation,
        "userInfo": {"username": rng.choice(USERS), "groups": ["system:authenticated"]},
        "object": obj,
        "dryRun": False,
    }
    if operation == "UPDATE":
        request["oldObject"] = obj
    denied = name.startswith("bad")
    response: dict[str, Any] = {"uid": uid, "allowed": not denied}
    if denied:
        response["status"] = {"code": 403, "message": "names starting with bad are refused"}
    elif kind == "Pod" and operation == "CREATE" and namespace not in SKIPPED_NAMESPACES:
        patch = sidecar_patch(obj, image="nginx:1.27-alpine", configmap="nginx-sidecar-config")
        if patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    slow = rng.random() < 0.002
    duration = rng.uniform(8500, 9500) if slow else rng.lognormvariate(0.7, 0.5)
    line = {
        "version": 1,
        "id": f"x{number:09d}",
        "time": started.isoformat(),
        "path": "/mutate?timeout=10s",
        "http_status": 200,
        "duration_ms": round(duration, 3),
        "upstream_ms": round(duration * 0.8, 3),
        "generation": 1 + number // 50000,
        "request": {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request,
        },
        "response": {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": response,
        },
        "flags": [],
        "error": None,
    }
    return json.dumps(line, separators=(",", ":")) + "\n"


def write_recording(
    path: Path, exchanges: int, *, seed: int = 16, start: datetime | None = None
) -> None:
    """Write ``exchanges`` lines to ``path`` (replacing it), 50 ms apart from ``start``."""
    rng = random.Random(seed)
    started = start or datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    step = timedelta(milliseconds=50)
    with path.open("w", encoding="utf-8") as file:
        chunk: list[str] = []
        for number in range(exchanges):
            chunk.append(exchange_line(number, started + number * step, rng))
            if len(chunk) >= 10000:
                file.write("".join(chunk))
                chunk = []
        file.write("".join(chunk))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--exchanges", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=16)
    options = parser.parse_args()
    began = time.monotonic()
    write_recording(options.out, options.exchanges, seed=options.seed)
    size, took = options.out.stat().st_size, time.monotonic() - began
    print(f"{options.exchanges} exchanges, {size / 2**20:.0f} MiB in {took:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
