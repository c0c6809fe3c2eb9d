"""Sample admission webhooks written with plain aiohttp: copy one and make it yours.

* ``sidecar_injector`` — mutating: adds an nginx sidecar to Pods (``/mutate``);
* ``statefulset_node_selector`` — mutating: pins StatefulSet Pods to nodes by ordinal
  parity (``/mutate``);
* ``require_limits`` — validating: denies containers without resource limits
  (``/validate``).

Each module has ``create_app()`` and ``app``; ``admission`` holds the few lines of
AdmissionReview handling they share. None of them depends on webhook-dev.
"""
