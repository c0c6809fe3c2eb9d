"""The local serving loop: TLS proxy, upstreams, reloader, and the stack that joins them.

``from webhook_dev.serving import ServingStack, ServingSpec`` is the library's entry point.
The two are imported on first use, not with the package: the worker and the process guard
run as ``python -m webhook_dev.serving.upstreams...`` children and must start without
loading aiohttp's server, watchfiles and the CA code the stack needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from webhook_dev.serving.spec import ServingSpec
    from webhook_dev.serving.stack import ServingStack

__all__ = ["ServingSpec", "ServingStack"]

_HOMES = {"ServingSpec": "webhook_dev.serving.spec", "ServingStack": "webhook_dev.serving.stack"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
