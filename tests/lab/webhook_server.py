"""A plain HTTPS mutating webhook, standard library only, run as a separate process.

Deliberately not webhook-dev's own code: the proof tests show the lab delivers real
apiserver calls to *any* HTTPS listener. It labels each admitted object with
``webhook-dev.io/mutated-by: <tag>`` so a test can tell which path the call took, and
prints ``listening`` once the socket is bound. ``--tag random`` labels each call with a
value of its own: a nondeterministic webhook (shadow mode's ``--calibrate`` test).

    python webhook_server.py --host 10.237.0.5 --port 18443 \
        --cert tls.crt --key tls.key --tag master
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LABEL = "webhook-dev.io/mutated-by"
RANDOM = "random"


def mutation_patch(obj: dict[str, object], tag: str) -> list[dict[str, object]]:
    metadata = obj.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    if not labels:
        return [{"op": "add", "path": "/metadata/labels", "value": {LABEL: tag}}]
    return [{"op": "add", "path": "/metadata/labels/" + LABEL.replace("/", "~1"), "value": tag}]


def make_handler(tag: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a production webhook server
        # http.server writes headers and body in two send()s; without TCP_NODELAY the
        # second waits for the client's delayed ACK: ~40 ms on every keep-alive call.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            review = json.loads(body)
            request = review["request"]
            value = secrets.token_hex(4) if tag == RANDOM else tag
            patch = mutation_patch(request.get("object") or {}, value)
            response = {
                "apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
                "kind": "AdmissionReview",
                "response": {
                    "uid": request["uid"],
                    "allowed": True,
                    "patchType": "JSONPatch",
                    "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
                },
            }
            payload = json.dumps(response).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--tag", default="webhook")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.tag))
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("listening", flush=True)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
