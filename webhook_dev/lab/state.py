"""The lab's state file: what ``lab up`` made, so any process can attach to it or tear it down.

It is written *before* the first namespace is created and updated as each process starts,
so ``lab down`` after a ``kill -9`` of ``lab up`` knows the names and pids to remove. The
prefix scan in teardown covers the window before the first write.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from webhook_dev.errors import LabError

STATE_VERSION = 1


@dataclass
class LabState:
    """Everything needed to use or remove a running lab from another process."""

    root: str
    prefix: str
    subnet: str
    gateway_ports: str
    aggregator_routing: bool
    routable: bool = False  # the master may open connections to the workstation
    binaries: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    owner_pid: int = 0
    # Whether the lab has a node (kubelet, containerd, kube-scheduler); ``lab up --no-node``.
    node: bool = False
    # The node's images as imported (reference -> manifest digest).
    images: dict[str, str] = field(default_factory=dict)
    version: int = STATE_VERSION

    def save(self, path: Path) -> None:
        """Write atomically: a reader never sees half a file."""
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LabState:
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            raise LabError(
                f"no lab is running (no state file at {path})",
                hint="start one with `webhook-dev lab up`",
            ) from None
        except json.JSONDecodeError as error:
            raise LabError(
                f"the lab state file {path} is corrupt: {error}",
                hint="run `webhook-dev lab down` to remove what is left",
            ) from None
        if document.get("version") != STATE_VERSION:
            raise LabError(
                f"the lab state file {path} has version {document.get('version')}, "
                f"this webhook-dev understands {STATE_VERSION}",
                hint="run `webhook-dev lab down` with the webhook-dev that started it",
            )
        return cls(**document)
