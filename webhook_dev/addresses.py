"""IP addresses as Kubernetes judges them. Pure.

kube-apiserver refuses Endpoints on loopback, link-local and unspecified addresses, and
a certificate names an IP differently from a DNS name: the tunnel, the certificates and
the plan all ask these questions, so they are answered once.
"""

from __future__ import annotations

import ipaddress


def is_ip_address(host: str) -> bool:
    """Whether ``host`` is an IP literal rather than a DNS name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def usable_endpoint_ip(address: str) -> bool:
    """Can ``address`` be an Endpoint the apiserver dials? Not loopback, link-local,
    unspecified, or anything that is not an IP."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)
