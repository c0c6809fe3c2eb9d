"""Replay recorded exchanges against the current code and compare answers by meaning."""
