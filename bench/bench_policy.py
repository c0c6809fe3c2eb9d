"""``replay --policy`` against plain ``replay`` of the same recording, in the same run.

Writes a synthetic recording (``bench/make_recording.py``: Pods and Secrets, mostly
patched), then times, with the same ``--jobs``:

1. ``replay FILE --app sample_webhook.sidecar_injector`` (the baseline: current code);
2. ``replay FILE --policy P --webhook mutating``: the same sidecar injection written as a
   MutatingAdmissionPolicy (an ApplyConfiguration adding the container, its volume and
   the annotation), decided through kube-apiserver's plugins in our Go evaluator.

Like for like: the policy decides as the webhook did wherever the webhook could have
been a policy, so both runs fail the same calls (the recording's ``bad-*`` denials,
which a mutating policy cannot make) and render the same number of diffs; the policy run
counts the redacted Secrets apart (not compared). Prints wall time, reviews/s and the CPU
of the whole process tree for each, round by round, and the ratio policy / replay of
each round. Output of both runs is discarded.

Run: ``.venv/bin/python bench/bench_policy.py [--exchanges 20000] [--jobs 2] [--rounds 1]``
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POLICY = """
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: sidecar-injector}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}
  matchConditions:
  - name: not-system
    expression: "!(request.namespace in ['kube-system', 'kube-public'])"
  - name: not-injected
    expression: >
      !object.spec.containers.exists(c, c.name == 'nginx-sidecar') &&
      object.metadata.?annotations[?'sidecar-injector/injected'].orValue('') != 'true' &&
      !(object.metadata.?annotations[?'sidecar-injector/inject'].orValue('').lowerAscii()
        in ['false', 'no', 'off', '0'])
  reinvocationPolicy: Never
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: >
        Object{
          metadata: Object.metadata{annotations: {"sidecar-injector/injected": "true"}},
          spec: Object.spec{
            containers: [Object.spec.containers{
              name: "nginx-sidecar",
              image: "nginx:1.27-alpine",
              ports: [Object.spec.containers.ports{
                name: "http", containerPort: 80, protocol: "TCP"}],
              volumeMounts: [Object.spec.containers.volumeMounts{
                name: "nginx-sidecar-config", mountPath: "/etc/nginx/conf.d", readOnly: true}]
            }],
            volumes: [Object.spec.volumes{
              name: "nginx-sidecar-config",
              configMap: Object.spec.volumes.configMap{name: "nginx-sidecar-config"}}]
          }
        }
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: sidecar-injector}
spec: {policyName: sidecar-injector}
"""


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds of the command and every process it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchanges", type=int, default=20000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    from webhook_dev.lab import policy_evaluator

    policy_evaluator.resolve(allow_build=True)  # not part of the timing
    with tempfile.TemporaryDirectory() as work:
        recording = Path(work) / "calls.jsonl"
        policy = Path(work) / "policy.yaml"
        policy.write_text(POLICY)
        here = Path(__file__).parent
        subprocess.run(
            [
                sys.executable,
                str(here / "make_recording.py"),
                str(recording),
                "--exchanges",
                str(args.exchanges),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        base = [
            sys.executable,
            "-m",
            "webhook_dev",
            "replay",
            str(recording),
            "-q",
            "--jobs",
            str(args.jobs),
        ]
        print(f"exchanges {args.exchanges}, --jobs {args.jobs}")
        for round_number in range(1, args.rounds + 1):
            replay_s, replay_cpu = timed([*base, "--app", "sample_webhook.sidecar_injector"])
            policy_s, policy_cpu = timed([*base, "--policy", str(policy), "--webhook", "mutating"])
            replay_rate, policy_rate = args.exchanges / replay_s, args.exchanges / policy_s
            print(
                f"round {round_number}: replay --app {replay_s:7.1f} s {replay_rate:6.0f}/s "
                f"(CPU {replay_cpu:6.1f} s) | replay --policy {policy_s:7.1f} s "
                f"{policy_rate:6.0f}/s (CPU {policy_cpu:6.1f} s) | "
                f"ratio policy/replay {policy_rate / replay_rate:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
