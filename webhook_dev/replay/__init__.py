"""Replay: recorded requests against the current code, answers compared by meaning."""

from webhook_dev.replay.replayer import ReplayResult, render, replay_exchange, replay_files

__all__ = ["ReplayResult", "render", "replay_exchange", "replay_files"]
