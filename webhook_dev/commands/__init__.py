"""The ``webhook-dev`` command line: one module per command, and their shared options."""
