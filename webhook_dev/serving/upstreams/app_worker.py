"""The worker: a child process that runs the user's own aiohttp app on a Unix socket.

Run as ``python -m webhook_dev.serving.upstreams.app_worker --socket PATH --ready-fd N``.
It imports aiohttp
first and then waits for one line on stdin naming the app (``{"app": "module:attr"}``),
so the parent can start it ahead of time and a reload pays only for the user's import.

It tells the parent on the ``--ready-fd`` pipe, as one JSON line, either
``{"ok": true, "pid": ...}`` once the app accepts calls, or ``{"ok": false, "error": ...}``
with the traceback. It never outlives the parent: on Linux the kernel SIGKILLs it when
the parent dies (``PR_SET_PDEATHSIG``, asked for before aiohttp is imported: that import
takes seconds on a loaded machine, and a ``kill -9`` of the parent then left the child
behind), and anywhere it exits when its stdin reaches EOF (the parent closed it or
died). SIGKILL, not SIGTERM: with the parent gone there is no call to finish, and a
handler blocking the loop (``time.sleep``) would never run a SIGTERM handler.

The app is the user's, unchanged, except for one outermost middleware that turns an
exception in a handler into a 500 whose body is the traceback, marked with the
``X-Webhook-Dev-Error`` header so the proxy can print and record it.

``sys.exit()`` or ``KeyboardInterrupt`` in a handler would otherwise end the event loop
at once and drop every call in flight. Instead that call is answered with its traceback,
marked ``handler-exit``: the parent starts the spare at once, sends new calls there, and
stops this worker the usual way once its calls have finished (then it exits with the
code asked for). Until then it keeps answering, so no other call is lost.

After the ready line, the parent writes ``ping`` lines on stdin and the worker answers
each with ``pong`` on the ready pipe, from its event loop: a handler that blocks the
loop (``time.sleep``) stops the pongs, and the parent replaces the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import importlib
import inspect
import json
import os
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable

PARENT_ENV = "WEBHOOK_DEV_WORKER_PARENT"  # the pid that spawned us, to notice it is gone


def die_with_parent() -> None:
    """Have the kernel SIGKILL us when the parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    parent = os.environ.get(PARENT_ENV, "")
    # Reparented already (to init, or a subreaper: not always pid 1).
    if os.getppid() == 1 or (parent.isdigit() and os.getppid() != int(parent)):
        os._exit(0)


if __name__ == "__main__":
    die_with_parent()

from aiohttp import web  # noqa: E402  (after the death signal: see the module's doc)

ERROR_HEADER = "X-Webhook-Dev-Error"
DEFAULT_ATTRS = ("create_app", "app")


class AppSpecError(Exception):
    """APP does not name an aiohttp Application or a factory of one."""


def split_spec(spec: str) -> tuple[str, str | None]:
    """``"pkg.mod:attr"`` → ``("pkg.mod", "attr")``; ``"pkg.mod"`` → ``("pkg.mod", None)``."""
    module, _, attr = spec.partition(":")
    if not module or (":" in spec and not attr):
        raise AppSpecError(f"APP {spec!r} must be 'module' or 'module:attribute'")
    return module, attr or None


async def load_app(spec: str) -> web.Application:
    """Import APP and return its Application, calling a (sync or async) factory if need be."""
    module_name, attr = split_spec(spec)
    module = importlib.import_module(module_name)
    if attr is None:
        found = [name for name in DEFAULT_ATTRS if hasattr(module, name)]
        if not found:
            raise AppSpecError(f"module {module_name} has neither create_app() nor app")
        attr = found[0]
    target: object = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise AppSpecError(f"module {module_name} has no attribute {attr!r}")
        target = getattr(target, part)
    if not isinstance(target, web.Application) and callable(target):
        target = target()
        if inspect.isawaitable(target):
            target = await target
    if not isinstance(target, web.Application):
        raise AppSpecError(
            f"{spec} is {type(target).__name__}, not an aiohttp.web.Application "
            "or a zero-argument function returning one"
        )
    return target


class _Exit:
    """The exit a handler asked for: set once, acted on after the other calls finish."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.code: int = 0


def _exit_code(error: BaseException) -> int:
    if isinstance(error, SystemExit):
        code = error.code
        if code is None:
            return 0
        return code if isinstance(code, int) else 1
    return 130  # KeyboardInterrupt, as a shell reports it


def _error_middleware(
    exit_request: _Exit,
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def report_handler_errors(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except (web.HTTPException, asyncio.CancelledError):
            raise
        except Exception:
            return web.Response(
                status=500,
                text=traceback.format_exc(),
                headers={ERROR_HEADER: "handler-exception"},
            )
        except (SystemExit, KeyboardInterrupt) as error:
            if not exit_request.requested.is_set():
                exit_request.code = _exit_code(error)
                exit_request.requested.set()
            return web.Response(
                status=500,
                text=traceback.format_exc(),
                headers={ERROR_HEADER: "handler-exit"},
            )

    return report_handler_errors


async def serve_app(
    spec: str, socket_path: str, exit_request: _Exit | None = None
) -> web.AppRunner:
    """Import APP and serve it on ``socket_path`` in this event loop, with the middleware
    that answers a handler's exception (or exit) with its traceback. The worker's main
    job; replay's shards run it in their own process (nothing to reload there)."""
    app = await load_app(spec)
    if not app.frozen:
        app.middlewares.insert(0, _error_middleware(exit_request or _Exit()))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.UnixSite(runner, socket_path).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def _serve(spec: str, socket_path: str, ready_fd: int) -> int:
    stop = asyncio.Event()
    exit_request = _Exit()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    answer_pings = False

    def _on_stdin() -> None:
        with contextlib.suppress(OSError):
            data = os.read(0, 4096)
            if data:
                if answer_pings:
                    os.write(ready_fd, b"pong\n" * data.count(b"ping\n"))
                return
        stop.set()

    loop.add_reader(0, _on_stdin)
    try:
        runner = await serve_app(spec, socket_path, exit_request)
    except BaseException as error:
        report = {"ok": False, "error": traceback.format_exc()}
        if isinstance(error, AppSpecError):
            report["error"] = f"{error}\n"
        os.write(ready_fd, (json.dumps(report) + "\n").encode())
        os.close(ready_fd)
        if isinstance(error, KeyboardInterrupt | SystemExit | asyncio.CancelledError):
            raise
        sys.exit(3)
    os.write(ready_fd, (json.dumps({"ok": True, "pid": os.getpid()}) + "\n").encode())
    answer_pings = True
    await stop.wait()
    await runner.cleanup()
    return exit_request.code if exit_request.requested.is_set() else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m webhook_dev.serving.upstreams.app_worker")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    args = parser.parse_args(argv)
    die_with_parent()  # again: main() may be called without ``-m`` (tests)
    line = sys.stdin.buffer.readline()
    if not line:
        return
    spec = json.loads(line)["app"]
    sys.path.insert(0, os.getcwd())
    code = asyncio.run(_serve(spec, args.socket, args.ready_fd))
    sys.exit(code)


if __name__ == "__main__":
    main()
