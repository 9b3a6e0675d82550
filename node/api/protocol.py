"""aiohttp's connection handler with jamnet's error rules.

aiohttp answers requests it cannot parse (a bad request line, oversized headers, broken
chunking) itself, in text/plain, and logs each with an error-level traceback: anyone could
fill an operator's log by sending garbage. Here those answers are JSON ``{"error": ...}`` like
every other refusal, logged at info without a traceback (and rate-limited by
``node.logs``); a client that disconnects mid-request is a debug line. Only real faults in
the node (a 500) keep their traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

log = logging.getLogger("jamnet.http")


class JsonErrorsHandler(RequestHandler):
    """One client connection (see the module docstring)."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        remote = request.remote
        if isinstance(exc, ConnectionError):
            log.debug("client %s went away mid-request", remote)
        elif status < 500:
            log.info("unparseable request from %s: %s", remote, message or exc)
        else:
            log.error("request from %s failed", remote, exc_info=exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the response had started: the connection is dropped")
        if status < 500:
            error = (message or (str(exc) if exc else "") or "bad request").strip()
        else:
            error = "internal error: the node logged it"
        response = web.Response(
            status=status,
            text=json.dumps({"error": error[:300]}),
            content_type="application/json",
        )
        response.force_close()
        return response


class JsonErrorsServer(web.Server):
    """Makes ``JsonErrorsHandler`` connections."""

    def __call__(self) -> RequestHandler:
        handler: RequestHandler = JsonErrorsHandler(self, loop=self._loop, **self._kwargs)
        return handler


class JsonErrorsRunner(web.AppRunner):
    """``web.AppRunner`` whose server is a ``JsonErrorsServer``."""

    async def _make_server(self) -> web.Server:
        server: Any = await super()._make_server()
        server.__class__ = JsonErrorsServer  # same fields; only the handler class differs
        return server  # type: ignore[no-any-return]
