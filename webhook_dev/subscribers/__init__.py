"""Subscribers to the proxy's exchange hook that show the calls to a person."""
