"""Run a sample in a cluster: ``python -m sample_webhook MODULE [--port 8443]``.

Serves HTTPS with the certificate mounted at ``/tls/tls.crt`` and ``/tls/tls.key`` (a
cert-manager Certificate, see ``deploy/``). On a workstation use ``webhook-dev serve``.

Each request is logged to stderr (aiohttp's access log), so ``kubectl logs`` shows which
replica answered which call — what a cluster operator reads to see where calls go.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import ssl

from aiohttp import web


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sample_webhook")
    parser.add_argument("module", help="e.g. sidecar_injector")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--cert", default="/tls/tls.crt")
    parser.add_argument("--key", default="/tls/tls.key")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    module = importlib.import_module(f"sample_webhook.{args.module}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    web.run_app(module.create_app(), port=args.port, ssl_context=context)


if __name__ == "__main__":
    main()
