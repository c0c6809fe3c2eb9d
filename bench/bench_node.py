"""Benchmark the lab's node: start to a Ready node, Pod create to Running, images.

    sudo .venv/bin/python bench/bench_node.py [--starts 3] [--pods 5] [--cold-images]

* start: ``Lab.start()`` with cached binaries and images until the node is Ready (the
  goal is <= 15 s), split into the control plane's part and the node's; ``lab down``.
* Pod: create an nginx Pod from the lab's image until all its containers are Ready
  (goal <= 5 s), one at a time.
* images: resolving the cached archive, importing it into a fresh containerd (part of
  every start), and with ``--cold-images`` a cold build (``mmdebstrap`` and packing) into
  a temporary cache directory.

Figures, not asserts: the machine is shared and has two cores. It runs its own lab
(prefix ``wdbnode``, subnet 10.237.6.0/24), beside any other.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BENCH_ENV = {
    "WEBHOOK_DEV_LAB_PREFIX": "wdbnode",
    "WEBHOOK_DEV_LAB_SUBNET": "10.237.6.0/24",
    "WEBHOOK_DEV_LAB_DIR": "/run/webhook-dev-lab-bench-node",
}
os.environ.update(BENCH_ENV)

from kubernetes import client  # noqa: E402

from webhook_dev.lab import Lab, images, teardown  # noqa: E402


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.2f} s, min {min(values):.2f} s, "
        f"max {max(values):.2f} s over {len(values)}"
    )


def pod_running(core: client.CoreV1Api, name: str) -> float:
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="nginx", image=images.NGINX_IMAGE, image_pull_policy="Never"
                )
            ],
            termination_grace_period_seconds=1,
        ),
    )
    started = time.monotonic()
    core.create_namespaced_pod("default", pod)
    while True:
        status = core.read_namespaced_pod(name, "default").status
        if status.container_statuses and all(c.ready for c in status.container_statuses):
            return time.monotonic() - started
        if time.monotonic() - started > 60:
            raise RuntimeError(f"Pod {name} not Running after 60 s: {status}")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--pods", type=int, default=5)
    parser.add_argument("--cold-images", action="store_true")
    args = parser.parse_args()
    teardown()

    started = time.monotonic()
    archive = images.resolve(allow_build=False)
    print(f"images: cached archive resolved in {time.monotonic() - started:.2f} s ({archive.path})")

    starts, node_parts, downs, pods = [], [], [], []
    for run in range(args.starts):
        started = time.monotonic()
        lab = Lab.start(with_node=False)
        control_plane = time.monotonic() - started
        teardown()
        started = time.monotonic()
        lab = Lab.start()
        total = time.monotonic() - started
        starts.append(total)
        node_parts.append(total - control_plane)
        print(
            f"start {run + 1}: {total:.2f} s to a Ready node "
            f"(control plane alone {control_plane:.2f} s)"
        )
        if run == 0:
            core = client.CoreV1Api(lab.api_client())
            for number in range(args.pods):
                pods.append(pod_running(core, f"bench-{number}"))
                print(f"  Pod {number + 1}: create -> Running {pods[-1]:.2f} s")
        started = time.monotonic()
        teardown()
        downs.append(time.monotonic() - started)
    print(f"start to Ready node: {summary(starts)}")
    print(f"the node's share of it: {summary(node_parts)}")
    print(f"lab down: {summary(downs)}")
    if pods:
        print(f"Pod create -> Running: {summary(pods)}")

    if args.cold_images:
        with tempfile.TemporaryDirectory() as cache:
            os.environ["WEBHOOK_DEV_CACHE_DIR"] = cache
            started = time.monotonic()
            images.resolve(allow_build=True)
            print(f"images, cold build (mmdebstrap + packing): {time.monotonic() - started:.1f} s")
            started = time.monotonic()
            images.resolve(allow_build=True)
            print(f"images, cached: {time.monotonic() - started:.2f} s")


if __name__ == "__main__":
    main()
