"""The Kubernetes API adapter: raw JSON manifests, optimistic concurrency, apply of YAML."""
