"""webhook-dev: develop Kubernetes admission webhooks on your workstation.

The packages are the subsystems, in layers whose imports point only downwards (the map is
docs/architecture.md; ``lint-imports`` enforces it):

* ``commands`` — the command line, one module per command;
* ``redirect`` (the cluster side of ``up``/``down``), ``inspector``, ``lab``;
* ``tunnel`` (transports), ``replay``, ``subscribers``;
* ``serving`` — the TLS proxy, the upstreams (app, command, URL), reloading;
* ``recording``, ``kube`` — files of exchanges; the Kubernetes API;
* ``admission``, ``tls`` — the pure core: reviews, exchanges, certificates;
* ``errors``, ``paths``, ``addresses`` — what everything may use.
"""

__version__ = "0.1.0"
