"""One HTTP call to a node from the terminal commands (urllib: no event loop needed)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

TIMEOUT_S = 60.0


def call(
    node: str,
    path: str,
    data: bytes | None = None,
    content_type: str = "application/json",
    insecure: bool = False,
) -> bytes:
    """GET ``path`` (POST when there is ``data``) on ``node``; the reply's body. A refusal
    or an unreachable node ends the command with the node's own message."""
    if not node.startswith(("http://", "https://")):
        raise SystemExit(f"jamnet: --node must be an http(s) URL, not {node!r}")
    headers = {"Content-Type": content_type} if data is not None else {}
    method = "GET" if data is None else "POST"
    request = urllib.request.Request(  # noqa: S310 - the URL is the user's node (checked)
        node.rstrip("/") + path, data=data, headers=headers, method=method
    )
    context = None
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
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
