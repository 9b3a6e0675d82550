"""Who a request comes from: the TCP peer, or behind a trusted reverse proxy the client it
names (``http.trusted_proxies``).

From a trusted proxy, the client is the last ``X-Forwarded-For`` hop that is not itself a
trusted proxy (a client can put anything in the header; only what the proxies appended is
believed). A malformed hop ends the walk at the proxy's own address: a limit then counts the
proxy, which is safe. From anyone else the header is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
PROXIES: web.AppKey[tuple[Network, ...]] = web.AppKey("trusted_proxies")


def networks(texts: Iterable[str]) -> tuple[Network, ...]:
    """``http.trusted_proxies`` as networks (validated by the config)."""
    return tuple(ipaddress.ip_network(text, strict=False) for text in texts)


def _inside(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(request: web.Request) -> str:
    """The address per-client limits count for ``request``."""
    remote = request.remote or "?"
    proxies = request.app.get(PROXIES, ())
    if not proxies or not _inside(remote, proxies):
        return remote
    hops = [
        hop.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for hop in header.split(",")
    ]
    for hop in reversed(hops):
        if _inside(hop, proxies):
            continue
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            return remote
    return remote
