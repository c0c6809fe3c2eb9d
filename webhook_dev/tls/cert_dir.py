"""A serving certificate in a directory, as controller-runtime's webhook server wants it.

kubebuilder and operator-sdk projects serve their webhooks with controller-runtime, which
refuses to start without ``tls.crt`` and ``tls.key`` in its cert dir
(``/tmp/k8s-webhook-server/serving-certs`` by default) and reloads them when they change.
``up --upstream-cert-dir DIR`` writes them from webhook-dev's local CA, so the project
runs unchanged behind the proxy, and the proxy trusts the upstream because it trusts its
own CA.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from webhook_dev.paths import write_private
from webhook_dev.tls.authority import LocalAuthority

CERT_NAME = "tls.crt"
KEY_NAME = "tls.key"


def write_cert_dir(
    authority: LocalAuthority,
    directory: Path,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = ("127.0.0.1",),
) -> bool:
    """Put a current certificate and key in ``directory`` (both 0600); ``True`` if written.

    The authority reissues when names change or expiry nears (its ``serving_files``);
    the directory's copies are replaced only when they differ, so a watcher in the user's
    process reloads only for a real renewal.
    """
    name = "upstream-" + "-".join(sorted(dns_names))[:60].replace("/", "_")
    cert_file, key_file = authority.serving_files(
        name, dns_names=dns_names, ip_addresses=ip_addresses
    )
    directory.mkdir(parents=True, exist_ok=True)
    written = False
    # The key first: a reader that sees a new certificate must find its key.
    for source, target in ((key_file, directory / KEY_NAME), (cert_file, directory / CERT_NAME)):
        content = source.read_bytes()
        if not target.exists() or target.read_bytes() != content:
            write_private(target, content)
            written = True
    return written
