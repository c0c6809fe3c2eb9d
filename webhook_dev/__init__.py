"""webhook-dev: develop Kubernetes admission webhooks on your workstation.

Layers, with imports pointing only downwards (see docs/architecture.md):

* pure core — ``review``, ``certs``, ``plan``: no network, no files;
* adapters — ``cluster``, ``tunnel``, ``proxy``, ``worker``, ``reloader``, ``recorder``,
  ``journal``, ``lab``: each owns one outside system and stays thin;
* commands — ``cli`` and ``session``: wire adapters together for a user.
"""

__version__ = "0.1.0"
