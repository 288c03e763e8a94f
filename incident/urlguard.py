"""Which hosts a contact or channel URL may name.

Contact and channel URLs are apprise URLs that the worker connects to. A URL naming a
link-local address (169.254.0.0/16, fe80::/10) or a cloud metadata service would let whoever
writes it read the instance's credentials, so such URLs are refused unless a setting
(``INCIDENT_ALLOW_LINK_LOCAL_URLS``) explicitly allows them. The check is on the URL's host
as written (IP literals in any form ``inet_aton`` reads, and the metadata host names); names
resolving there are the DNS administrator's business.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import unquote, urlsplit

METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud
    }
)
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        found = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        try:  # 2852039166, 0xa9fea9fe, 169.254.43518: forms resolvers accept too
            found = ipaddress.ip_address(socket.inet_aton(host))
        except (OSError, ValueError):
            return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def refused_host(url: str) -> str | None:
    """Why ``url`` may not be used (its host is link-local or a metadata service), or None."""
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return "the URL cannot be read"
    if not host:
        return None
    host = unquote(host).rstrip(".").lower()
    if host in METADATA_HOSTS:
        return f"{host} is a cloud metadata service"
    address = _address(host)
    if address is None:
        return None
    if address in METADATA_ADDRESSES:
        return "the address is a cloud metadata service"
    if any(address in network for network in _LINK_LOCAL) or address.is_link_local:
        return "the address is link-local (169.254.0.0/16, fe80::/10)"
    return None


def check_url(url: str, *, allow_link_local: bool = False) -> str | None:
    """Why ``url`` is refused under the setting, or None when it may be used."""
    return None if allow_link_local else refused_host(url)
