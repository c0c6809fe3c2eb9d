"""Transports that carry the apiserver's connections to the local proxy (today: SSH)."""
