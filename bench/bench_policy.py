"""``replay --policy`` against plain ``replay`` of the same recording, in the same run.

Writes a synthetic recording (``bench/make_recording.py``: Pods and Secrets, mostly
patched), then times, with the same ``--jobs``:

1. ``replay FILE --app sample_webhook.sidecar_injector`` (the baseline: current code);
2. ``replay FILE --policy P --webhook mutating``: a MutatingAdmissionPolicy (an
   ApplyConfiguration and a JSONPatch) and a ValidatingAdmissionPolicy decide each call
   through kube-apiserver's plugins in our Go evaluator.

Prints reviews/s for each and the ratio policy / replay. Output of both runs is discarded
(most calls differ: the policy is not the sample webhook).

Run: ``.venv/bin/python bench/bench_policy.py [--exchanges 20000] [--jobs 2]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POLICY = """
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: bench-owner}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods]}
  reinvocationPolicy: Never
  mutations:
  - patchType: ApplyConfiguration
    applyConfiguration:
      expression: 'Object{metadata: Object.metadata{labels: {"owner": "bench"}}}'
  - patchType: JSONPatch
    jsonPatch:
      expression: '[JSONPatch{op: "add", path: "/metadata/annotations", value: {"a": "b"}}]'
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: bench-owner}
spec: {policyName: bench-owner}
"""


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exchanges", type=int, default=20000)
    parser.add_argument("--jobs", type=int, default=2)
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
        replay_s = timed([*base, "--app", "sample_webhook.sidecar_injector"])
        policy_s = timed([*base, "--policy", str(policy), "--webhook", "mutating"])
    replay_rate, policy_rate = args.exchanges / replay_s, args.exchanges / policy_s
    print(f"exchanges {args.exchanges}, --jobs {args.jobs}")
    print(f"replay --app      {replay_s:7.1f} s  {replay_rate:8.0f} reviews/s")
    print(f"replay --policy   {policy_s:7.1f} s  {policy_rate:8.0f} reviews/s")
    print(f"ratio policy/replay: {policy_rate / replay_rate:.2f}")


if __name__ == "__main__":
    main()
