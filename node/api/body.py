"""Reading request bodies: size-capped by aiohttp, time-capped here, JSON checked once.

A client that sends its body a byte at a time would otherwise hold a handler (and its
connection) for as long as it likes. Headers are capped by the server's keep-alive timer
(``node.app``): a connection that has not finished a request's headers when it fires is
closed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from node.errors import InputError, JamnetError

BODY_TIMEOUT = web.AppKey("body_timeout_s", float)
DEFAULT_BODY_TIMEOUT_S = 10.0


class RequestTimeoutError(JamnetError):
    """The client took too long to send its request (HTTP 408)."""


def reject_constant(name: str) -> float:
    """``json.loads`` hook: NaN and Infinity are not JSON numbers we take."""
    raise InputError(f"{name} is not allowed in JSON numbers")


async def read_body(request: web.Request) -> bytes:
    """The raw body, within the node's body timeout (408 after it)."""
    limit = request.app.get(BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT_S)
    try:
        async with asyncio.timeout(limit):
            return await request.read()
    except TimeoutError:
        raise RequestTimeoutError(f"the request body did not arrive within {limit:g} s") from None


async def json_body(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object (``{}`` when empty)."""
    raw = await read_body(request)
    if not raw:
        return {}
    try:
        body = json.loads(raw, parse_constant=reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InputError("request body must be a JSON object")
    return body
