"""The inspector: a live web page of every admission call (``serve``, ``up``, ``inspect``).

Two parts, wired by the commands::

    feed = ExchangeFeed()                      # a subscriber on the stack's hook
    stack = ServingStack.for_app(app, subscribers=[feed])
    async with stack, InspectorServer(feed, replay_target=lambda: stack.upstream) as page:
        print(f"inspector {page.url}")

:mod:`~webhook_dev.inspector.views` (pure) decides what the page shows;
``static/`` holds the page itself (plain HTML, CSS and JavaScript; no build step, no CDN).
"""

from webhook_dev.inspector.feed import ExchangeFeed
from webhook_dev.inspector.server import InspectorServer

__all__ = ["ExchangeFeed", "InspectorServer"]
