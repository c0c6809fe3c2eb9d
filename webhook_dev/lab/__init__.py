"""A real Kubernetes control plane on one machine, in network namespaces.

See docs/lab.md. This is a product feature (our e2e tests, the demo, and users' own
webhook tests through the pytest plugin), not test-only code.
"""
