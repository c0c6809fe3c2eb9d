"""A "production" webhook for tests: an HTTPS server on loopback whose certificate, from
a CA of its own, names only a Service's DNS name — so a client that reaches it must
verify against that CA and that name, as the apiserver verifies an in-cluster webhook."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

from webhook_dev.tls import certs

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def tls_production(
    directory: Path, service_name: str, answer: Handler, path: str = "/mutate"
) -> AsyncIterator[tuple[int, bytes]]:
    """Serve ``answer`` at ``path``; yields the port and the CA's PEM."""
    ca = certs.new_ca("team CA")
    serving = certs.new_serving_cert(ca, dns_names=[service_name])
    (directory / "tls.crt").write_bytes(serving.cert_pem)
    (directory / "tls.key").write_bytes(serving.key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    app = web.Application()
    app.router.add_post(path, answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port, ca.cert_pem
    finally:
        await runner.cleanup()
