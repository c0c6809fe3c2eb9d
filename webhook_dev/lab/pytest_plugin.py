"""pytest fixtures for a session-scoped lab; see docs/lab.md."""
