"""One HTTP call to a node from the terminal commands (urllib: no event loop needed)."""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

TIMEOUT_S = 60.0
DEFAULT_NODE = "http://127.0.0.1:8080"


def add_node_flag(parser: Any, help_text: str = "node URL") -> None:
    """``--node``, defaulting to ``$JAMNET_NODE`` (then the local node): every command."""
    parser.add_argument(
        "--node",
        default=os.environ.get("JAMNET_NODE") or DEFAULT_NODE,
        help=f"{help_text} (default: $JAMNET_NODE, else {DEFAULT_NODE})",
    )


def call(
    node: str,
    path: str,
    data: bytes | None = None,
    content_type: str = "application/json",
    insecure: bool = False,
    method: str | None = None,
    source: str | None = None,
) -> bytes:
    """GET ``path`` (POST when there is ``data``, or ``method``) on ``node``; the reply's
    body. ``source`` binds the local address (a listener on one of several addresses). A
    refusal or an unreachable node ends the command with the node's own message."""
    if not node.startswith(("http://", "https://")):
        raise SystemExit(f"jamnet: --node must be an http(s) URL, not {node!r}")
    headers = {"Content-Type": content_type} if data is not None else {}
    method = method or ("GET" if data is None else "POST")
    request = urllib.request.Request(  # noqa: S310 - the URL is the user's node (checked)
        node.rstrip("/") + path, data=data, headers=headers, method=method
    )
    context = None
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        if source is not None:
            return _from_source(request, source)
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as reply:  # noqa: S310
            body: bytes = reply.read()
            return body
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        raise SystemExit(f"jamnet: the node refused ({exc.code}): {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise SystemExit(f"jamnet: cannot reach the node at {node}: {exc}") from None


def _from_source(request: urllib.request.Request, source: str) -> bytes:
    """One plain-HTTP request from a chosen local address."""
    import http.client

    url = urllib.parse.urlsplit(request.full_url)
    if url.scheme != "http":
        raise SystemExit("jamnet: --source works with http:// nodes only")
    connection = http.client.HTTPConnection(
        url.hostname or "127.0.0.1", url.port or 80, timeout=TIMEOUT_S, source_address=(source, 0)
    )
    try:
        path = url.path + (f"?{url.query}" if url.query else "")
        connection.request(
            request.get_method(), path, body=request.data, headers=dict(request.header_items())
        )
        reply = connection.getresponse()
        body = reply.read()
        if reply.status >= 400:
            try:
                message = json.loads(body).get("error", reply.reason)
            except ValueError:
                message = reply.reason
            raise SystemExit(f"jamnet: the node refused ({reply.status}): {message}")
        return body
    except OSError as exc:
        raise SystemExit(f"jamnet: cannot reach the node: {exc}") from None
    finally:
        connection.close()
