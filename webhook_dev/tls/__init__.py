"""Certificates: the pure issuing code and the workstation's own CA."""
