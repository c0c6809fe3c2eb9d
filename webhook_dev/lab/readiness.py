"""Is the lab up yet? Small, fast checks from the root namespace.

They use the standard library's HTTPS client rather than the kubernetes package: importing
that takes about a second, and ``lab up`` polls every 100 ms to stay well inside its
30-second budget.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from webhook_dev.errors import LabError
from webhook_dev.lab.netns import in_namespace


class ApiReadiness:
    """GETs against the apiserver with the admin client certificate."""

    def __init__(self, host: str, port: int, ca: Path, cert: Path, key: Path) -> None:
        self._host, self._port = host, port
        self._context = ssl.create_default_context(cafile=str(ca))
        self._context.load_cert_chain(str(cert), str(key))

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, str]:
        """(status, body); status 0 when the connection itself fails."""
        return self.request("GET", path, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        timeout: float = 2.0,
        content_type: str = "application/json",
    ) -> tuple[int, str]:
        """(status, body) of one request with a JSON body; status 0 if it did not connect."""
        connection = http.client.HTTPSConnection(
            self._host, self._port, context=self._context, timeout=timeout
        )
        try:
            payload = None if body is None else json.dumps(body)
            headers = {} if body is None else {"Content-Type": content_type}
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException):
            return 0, ""
        finally:
            connection.close()

    def ok(self, path: str) -> bool:
        return self.get(path)[0] == 200


def listening(namespace: str, port: int) -> bool:
    """Whether something in ``namespace`` listens on TCP ``port`` (any address)."""
    result = subprocess.run(
        in_namespace(namespace, ["ss", "-Hltn", f"sport = :{port}"]),
        capture_output=True,
        text=True,
        timeout=10,
    )
    return result.returncode == 0 and bool(result.stdout.strip())


def listening_addresses(namespace: str, port: int) -> list[str]:
    """Local addresses of TCP listeners on ``port`` in ``namespace`` (e.g. ``127.0.0.1``)."""
    result = subprocess.run(
        in_namespace(namespace, ["ss", "-Hltn", f"sport = :{port}"]),
        capture_output=True,
        text=True,
        timeout=10,
    )
    addresses = []
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            addresses.append(fields[3].rsplit(":", 1)[0].strip("[]"))
    return addresses


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    hint: str | None = None,
    interval: float = 0.1,
) -> None:
    """Poll ``condition`` until true; raise :class:`LabError` naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    if condition():
        return
    raise LabError(f"timed out after {timeout:.0f}s waiting for {what}", hint=hint)
