"""HTTP routes of the royalty loop: a take's work (split, consents, registration), content
streams, plays and listen receipts, royalty periods."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from aiohttp import web

from node.api.clients import client_address
from node.errors import AuthError, ForbiddenError, InputError, NotFoundError, SessionError
from node.identity import recover_signer
from node.listens import ListenBook
from node.royalties import Royalties
from node.works import Works, content_hash, resolve_uri

WORKS = web.AppKey("works", Works)
LISTENS = web.AppKey("listens", ListenBook)
ROYALTIES = web.AppKey("royalties", Royalties)
CLOSE_MAX_AGE_S = 600


def close_message(period_id: int, signed_at: int) -> str:
    """The text the node's key holder signs to close a royalty period."""
    return f"jamnet close period\nperiod: {period_id}\nsigned: {signed_at}"


async def _json(request: web.Request) -> dict[str, Any]:
    from node.api.server import _body  # one body parser for every route

    return await _body(request)


def _work_id(request: web.Request) -> int:
    text = request.match_info["work_id"]
    if not text.isascii() or not text.isdecimal() or len(text) > 18:
        raise InputError("a work id is a whole number")
    return int(text)


async def show_draft(request: web.Request) -> web.Response:
    """A take's work: the proposed (or owner-set) split, consents, state, what to sign."""
    return web.json_response(await request.app[WORKS].draft(request.match_info["recording_id"]))


async def set_split(request: web.Request) -> web.Response:
    """The session owner sets the split (signed); consents start over."""
    body = await _json(request)
    draft = await request.app[WORKS].set_split(
        request.match_info["recording_id"],
        body.get("split"),
        body.get("signed_at"),
        body.get("signature"),
    )
    return web.json_response(draft)


async def set_parents(request: web.Request) -> web.Response:
    """The session owner names the take's parent works (signed); consents start over."""
    body = await _json(request)
    draft = await request.app[WORKS].set_parents(
        request.match_info["recording_id"],
        body.get("parents"),
        body.get("derivative_bps", 0),
        body.get("signed_at"),
        body.get("signature"),
    )
    return web.json_response(draft)


async def add_consent(request: web.Request) -> web.Response:
    """A contributor's EIP-712 consent; the last one queues the registration."""
    body = await _json(request)
    draft = await request.app[WORKS].consent(
        request.match_info["recording_id"], body.get("address"), body.get("signature")
    )
    return web.json_response(draft)


async def list_works(request: web.Request) -> web.Response:
    """Works drafted from this node's takes, with their state and counted plays."""
    works = request.app[WORKS]
    await works.refresh()
    counts = request.app[LISTENS].counts()
    drafts = works.all()
    for draft in drafts:
        draft["plays"] = counts.get(draft["work_id"], 0) if draft["work_id"] is not None else 0
        draft.pop("typed_data")
    return web.json_response({"works": drafts})


def _registered(request: web.Request, work_id: int) -> dict[str, Any]:
    row = request.app[WORKS].by_work(work_id)
    if row is None:
        raise NotFoundError(
            f"work {work_id} is not served by this node: resolve its URI"
            " (GET /api/content/resolve?uri=...)"
        )
    return row


async def start_play(request: web.Request) -> web.Response:
    """Start a play of a registered work for a listener key."""
    work_id = _work_id(request)
    row = _registered(request, work_id)
    body = await _json(request)
    play = request.app[LISTENS].start(
        work_id, row["content_hash"], body.get("listener"), client_address(request), time.time()
    )
    play["stream"] = f"/api/content/{row['content_hash']}"
    play["period"] = request.app[ROYALTIES].current
    return web.json_response(play, status=201)


async def listen_receipt(request: web.Request) -> web.Response:
    """A signed listen receipt after at least 30 s of playback."""
    body = await _json(request)
    counted = request.app[LISTENS].receipt(
        request.match_info["play_id"].lower(),
        body.get("played_ms"),
        body.get("signature"),
        client_address(request),
        request.app[ROYALTIES].current,
        time.time(),
    )
    return web.json_response(counted, status=201)


async def content(request: web.Request) -> web.StreamResponse:
    """A registered work's audio (WAV), with HTTP range requests."""
    digest = content_hash(request.match_info["content_hash"])
    row = request.app[WORKS].by_content(digest)
    if row is None or row["state"] != "registered":
        raise NotFoundError("no registered work with this content on this node")
    recording = request.app[WORKS].store.recording(row["recording_id"])
    if recording is None:
        raise NotFoundError("the take's files are gone from this node")
    path = Path(recording["path"]) / "mix.wav"
    if not path.is_file():
        raise NotFoundError("the take's mix is missing on this node")
    response = web.FileResponse(path, headers={"Content-Type": "audio/wav"})
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


async def resolve(request: web.Request) -> web.Response:
    """A content URI → the URL of the node that serves it (through NodeRegistry)."""
    uri = request.query.get("uri", "")
    listing = await request.app[WORKS].chain.read("operators")
    endpoints = {o["address"]: o["endpoint"] for o in listing["operators"]}
    url = resolve_uri(uri, endpoints.get)
    return web.json_response({"uri": uri, "url": url})


async def royalty_periods(request: web.Request) -> web.Response:
    """The pool's unallocated funds and every period with its roll-up and state."""
    royalties = request.app[ROYALTIES]
    pool = await royalties.chain.read("pool")
    return web.json_response(
        {"current": royalties.current, "pool": pool, "periods": royalties.periods()}
    )


async def close_period(request: web.Request) -> web.Response:
    """The node's key holder closes the open period (signed), which starts its settlement."""
    royalties = request.app[ROYALTIES]
    body = await _json(request)
    period, signed_at = body.get("period"), body.get("signed_at")
    if isinstance(period, bool) or not isinstance(period, int):
        raise InputError("period must be the id of the open period")
    if isinstance(signed_at, bool) or not isinstance(signed_at, int):
        raise InputError("signed_at must be the Unix time it was signed at")
    if abs(time.time() - signed_at) > CLOSE_MAX_AGE_S:
        raise AuthError("the signature is more than 10 minutes old: sign again")
    account = royalties.chain.account
    if account is None:
        raise SessionError("this node has no chain key")
    if recover_signer(close_message(period, signed_at), body.get("signature")) != account.address:
        raise ForbiddenError("only the holder of this node's key closes a period")
    if period != royalties.current:
        raise SessionError(f"period {period} is not open (the open one is {royalties.current})")
    return web.json_response(royalties.close_period())


def add_routes(
    app: web.Application, works: Works, listens: ListenBook, royalties: Royalties
) -> None:
    """Mount the routes."""
    app[WORKS] = works
    app[LISTENS] = listens
    app[ROYALTIES] = royalties
    app.router.add_get("/api/recordings/{recording_id}/work", show_draft)
    app.router.add_put("/api/recordings/{recording_id}/work/split", set_split)
    app.router.add_put("/api/recordings/{recording_id}/work/parents", set_parents)
    app.router.add_post("/api/recordings/{recording_id}/work/consents", add_consent)
    app.router.add_get("/api/works", list_works)
    app.router.add_post("/api/works/{work_id}/plays", start_play)
    app.router.add_post("/api/plays/{play_id}/receipt", listen_receipt)
    app.router.add_get("/api/content/resolve", resolve)
    app.router.add_get("/api/content/{content_hash}", content)
    app.router.add_get("/api/royalties", royalty_periods)
    app.router.add_post("/api/royalties/close", close_period)
