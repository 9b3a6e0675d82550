"""Network routes: the live view of the jamnet network and the session directory.

GET /api/network     this node, every live node it knows, rejected-gossip counters
GET /api/directory   public sessions on every live node, each with its node's URL
"""

from __future__ import annotations

from aiohttp import web

from node.p2p.service import P2PService

P2P = web.AppKey("p2p", P2PService)


async def network(request: web.Request) -> web.Response:
    """The network as this node sees it."""
    return web.json_response(request.app[P2P].network())


async def directory(request: web.Request) -> web.Response:
    """Public sessions across the network."""
    return web.json_response({"sessions": request.app[P2P].directory()})


def add_routes(app: web.Application, p2p: P2PService) -> None:
    """Register the network routes."""
    app[P2P] = p2p
    app.router.add_get("/api/network", network)
    app.router.add_get("/api/directory", directory)
