"""A real Kubernetes control plane on one machine, in network namespaces.

See docs/lab.md. This is a product feature (our e2e tests, the demo, and users' own
webhook tests through the pytest plugin), not test-only code::

    from webhook_dev.lab import Lab
    lab = Lab.attach()                 # or Lab.start()
    subprocess.run(lab.workstation_argv(["kubectl", "get", "ns"]), check=True)
"""

from webhook_dev.lab.lab import Lab, preflight, teardown

__all__ = ["Lab", "preflight", "teardown"]
