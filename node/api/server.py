"""aiohttp application: JSON API, WebRTC signalling, WebSocket events, the web client."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import node
from node import records
from node.ai.service import AiService, AiUnavailableError
from node.api.ai import add_routes
from node.api.body import BODY_TIMEOUT, RequestTimeoutError, json_body, reject_constant
from node.api.clients import PROXIES, client_address, networks
from node.api.openapi import document
from node.api.p2p import add_routes as add_p2p_routes
from node.api.works import add_routes as add_works_routes
from node.chain.service import ChainService
from node.config import FRAME_SIZES_MS
from node.errors import (
    AuthError,
    ForbiddenError,
    InputError,
    JamnetError,
    MediaError,
    NotFoundError,
    RateLimitError,
    SessionError,
    SpatialError,
)
from node.identity import ChallengeBook, parse_address
from node.inputs import decimal_text, participant_name
from node.inputs import session_id as session_id_of
from node.jam import JamService
from node.media.engine import MixClocks
from node.media.opus import LOOKAHEAD_MS
from node.media.peer import TRANSPORTS, validate_offer
from node.metrics import Metrics
from node.p2p.service import P2PService
from node.session.render import STAGE_HALF_M
from node.session.session import (
    CHAT_MAX,
    KEY_RE,
    NAME_MAX,
    SessionSettings,
    _number,
    parse_chat,
    parse_chords,
    parse_orientation,
    parse_position,
    parse_time_signature,
)
from node.spatial.room import Room

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent.parent / "client" / "web"
VENDOR_FILES = {
    "ethers.js": Path("node_modules/ethers/dist/ethers.umd.min.js"),
    "opus-decoder.js": Path("node_modules/opus-decoder/dist/opus-decoder.min.js"),
}
STATUS = {
    InputError: 400,
    AuthError: 401,
    ForbiddenError: 403,
    NotFoundError: 404,
    SessionError: 409,
    MediaError: 502,
    SpatialError: 400,
    AiUnavailableError: 503,
    RateLimitError: 429,
    RequestTimeoutError: 408,
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STEM_RE = re.compile(r"^stem-[A-Za-z0-9_-]{1,64}\.wav$")

SERVICE = web.AppKey("service", JamService)
CHALLENGES = web.AppKey("challenges", ChallengeBook)
METRICS = web.AppKey("metrics", Metrics)
CLOCK = web.AppKey("clock", MixClocks)
ROOT = web.AppKey("root", Path)
CHAIN = web.AppKey("chain", object)
P2P_ON = web.AppKey("p2p_on", bool)
OPERATOR: web.AppKey[Any] = web.AppKey("operator")


class PerMinute:
    """At most ``limit`` events per key in any minute; at most ``keys`` keys remembered."""

    def __init__(self, limit: int, keys: int = 10_000) -> None:
        self.limit = limit
        self.keys = keys
        self._seen: dict[str, list[float]] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        """Count one event for ``key``; False when it is over the limit."""
        now = time.monotonic() if now is None else now
        recent = [t for t in self._seen.pop(key, []) if now - t < 60.0]
        allowed = len(recent) < self.limit
        if allowed:
            recent.append(now)
        self._seen[key] = recent  # most recent last: the oldest key is dropped first
        while len(self._seen) > self.keys:
            self._seen.pop(next(iter(self._seen)))
        return allowed


CHALLENGE_LIMIT = web.AppKey("challenge_limit", PerMinute)


def _status_for(exc: JamnetError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal is JSON ``{"error": ...}`` with a 4xx status; the node keeps serving."""
    try:
        return await handler(request)
    except JamnetError as exc:
        status = _status_for(exc)
        request.app[METRICS].http_errors.labels(str(status)).inc()
        return web.json_response({"error": str(exc)}, status=status)
    except web.HTTPException as exc:
        if exc.status >= 400:
            request.app[METRICS].http_errors.labels(str(exc.status)).inc()
            reason = exc.reason
            if exc.status == 413:
                reason = "request body is too large"
            return web.json_response({"error": reason}, status=exc.status)
        raise


_body = json_body  # the one body parser for every route (node.api.body)


def _finite(value: object) -> bool:
    """A JSON number a float can hold (huge integers and NaN are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    token = request.query.get("token", "")
    if not token:
        raise AuthError("missing participant token (Authorization: Bearer <token>)")
    return token


def _participant(request: web.Request) -> tuple[str, Any]:
    session_id = request.match_info["session_id"]
    session = request.app[SERVICE].get(session_id)
    return session_id, session.by_token(_bearer(request))


def _prove(request: web.Request, body: dict[str, Any]) -> str:
    address = parse_address(body.get("address"))
    return request.app[CHALLENGES].consume(address, body.get("nonce"), body.get("signature"))


# ------------------------------------------------------------------ handlers
async def health(request: web.Request) -> web.Response:
    """Liveness for supervisors: 200 while the mix clock is ticking."""
    clock = request.app[CLOCK]
    service = request.app[SERVICE]
    sessions = service.sessions()
    return web.json_response(
        {
            "status": "ok",
            "version": node.__version__,
            "sessions": len(sessions),
            "participants": sum(len(s.participants) for s in sessions),
            "ticks": clock.stats.ticks,
            "tick_overruns": clock.stats.overruns,
            "chain": _chain_info(request)["mode"],
        }
    )


def _chain_info(request: web.Request) -> dict[str, Any]:
    chain = request.app[CHAIN]
    if not isinstance(chain, ChainService):
        return {"mode": "off", "ready": False}
    return chain.info()


async def faucet(request: web.Request) -> web.Response:
    """Devnet only: gas and a little JAM for a new key (rate-limited)."""
    chain = request.app[CHAIN]
    if not isinstance(chain, ChainService):
        raise SessionError("this node runs without a chain")
    body = await _body(request)
    address = body.get("address")
    if not isinstance(address, str):
        raise InputError("address must be an Ethereum address")
    return web.json_response(await chain.faucet(address, client_address(request)))


def _chain(request: web.Request) -> ChainService:
    chain = request.app[CHAIN]
    if not isinstance(chain, ChainService):
        raise SessionError("this node runs without a chain")
    return chain


async def chain_account(request: web.Request) -> web.Response:
    """JAM, ETH, votes and delegate of an address."""
    return web.json_response(await _chain(request).read("account", request.match_info["address"]))


async def chain_work(request: web.Request) -> web.Response:
    """A registered work, its split and what each contributor is owed."""
    text = request.match_info["work_id"]
    decimal_text(text, "work id")
    return web.json_response(await _chain(request).read("work", int(text)))


async def chain_proposals(request: web.Request) -> web.Response:
    """Governance proposals with state and tallies, newest first."""
    return web.json_response({"proposals": await _chain(request).read("proposals")})


async def chain_events(request: web.Request) -> web.Response:
    """Indexed contract events, newest first (?contract=&name=&limit=)."""
    query = request.query
    contract, name = query.get("contract"), query.get("name")
    for value in (contract, name):
        if value is not None and (not value.isidentifier() or len(value) > 64):
            raise InputError("contract and name must be identifiers")
    limit_text = query.get("limit", "100")
    if not 1 <= decimal_text(limit_text, "limit", 4) <= 1000:
        raise InputError("limit must be 1-1000")
    events = await _chain(request).read("events", contract, name, int(limit_text))
    return web.json_response({"events": events})


async def chain_rewards(request: web.Request) -> web.Response:
    """Node operators' rewards: this period's pot, the formula, every report and its share,
    and what this node metered and reported (``this_node``; null when it does not take part)."""
    rewards = dict(await _chain(request).read("rewards"))  # a copy: reads are kept per block
    operator = request.app[OPERATOR]
    rewards["this_node"] = operator.status() if operator is not None else None
    return web.json_response(rewards)


async def chain_operators(request: web.Request) -> web.Response:
    """Registered node operators and the registry's parameters."""
    return web.json_response(await _chain(request).read("operators"))


async def chain_info(request: web.Request) -> web.Response:
    """Chain id, RPC URL (devnet) and contract addresses."""
    return web.json_response(_chain_info(request))


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    data = generate_latest(request.app[METRICS].registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def challenge(request: web.Request) -> web.Response:
    """Issue a single-use sign-in challenge for an address (a few a minute per client address,
    so a flood from one place cannot push everyone else's challenges out)."""
    body = await _body(request)
    address = parse_address(body.get("address"))
    if not request.app[CHALLENGE_LIMIT].allow(client_address(request)):
        raise RateLimitError("too many sign-in challenges from your address: wait a minute")
    issued = request.app[CHALLENGES].issue(address)
    return web.json_response(
        {
            "address": address,
            "nonce": issued.nonce,
            "message": issued.message,
            "expires_at": issued.expires_at,
        }
    )


async def client_config(request: web.Request) -> web.Response:
    """What a client needs to know of this node's settings (the web page reads it at start)."""
    config = request.app[SERVICE].config
    return web.json_response(
        {
            "version": node.__version__,
            "frame_ms": config.media.frame_ms,
            "frame_sizes_ms": [
                {"frame_ms": ms, "max_participants": config.participant_limit(ms)}
                for ms in FRAME_SIZES_MS
            ],
            "transports": list(TRANSPORTS),
            "browser_transport": config.media.browser_transport,
            "opus_application": config.media.opus_application,
            "opus_lookahead_ms": LOOKAHEAD_MS[config.media.opus_application],
            "uplink_bitrate_bps": config.media.uplink_bitrate_bps,
            "downlink_bitrate_bps": config.media.downlink_bitrate_bps,
            "stage_half_m": STAGE_HALF_M,
            "name_max": NAME_MAX,
            "chat_max": CHAT_MAX,
            "p2p": request.app[P2P_ON],
        }
    )


async def list_sessions(request: web.Request) -> web.Response:
    """Public sessions on this node."""
    sessions = [s.public() for s in request.app[SERVICE].sessions() if not s.settings.private]
    return web.json_response({"sessions": sessions})


async def create_session(request: web.Request) -> web.Response:
    """Create a session; the signer of the challenge becomes its owner."""
    body = await _body(request)
    settings = SessionSettings.parse(body, request.app[SERVICE].config.media.frame_ms)
    owner = _prove(request, body)
    session = request.app[SERVICE].create(owner, settings, client_address(request))
    return web.json_response(session.public(), status=201)


async def show_session(request: web.Request) -> web.Response:
    """One session (private ones too: the id is the capability to see it)."""
    return web.json_response(request.app[SERVICE].get(request.match_info["session_id"]).public())


async def update_session(request: web.Request) -> web.Response:
    """Owner changes tempo, time signature, key, chords or room (an object, or null)."""
    session_id, participant = _participant(request)
    service = request.app[SERVICE]
    service.get(session_id).require_owner(participant)
    body = await _body(request)
    tempo = _number(body, "tempo_bpm", 20, 300) if "tempo_bpm" in body else None
    signature = parse_time_signature(body["time_signature"]) if "time_signature" in body else None
    key = body.get("key")
    if key is not None and (not isinstance(key, str) or not KEY_RE.match(key)):
        raise InputError('key must be a note name with optional mode, e.g. "C", "F#m"')
    unknown = set(body) - {"tempo_bpm", "time_signature", "key", "room", "chords"}
    if unknown:
        raise InputError(f"unknown field {sorted(unknown)[0]!r}")
    room: Room | bool | None = False
    if "room" in body:
        room = None if body["room"] is None else Room.parse(body["room"])
    chords = parse_chords(body["chords"]) if "chords" in body else None
    session = service.update(session_id, tempo, signature, key, room, chords)
    return web.json_response(session.public())


async def close_session(request: web.Request) -> web.Response:
    """Owner ends the session."""
    session_id, participant = _participant(request)
    service = request.app[SERVICE]
    service.get(session_id).require_owner(participant)
    await service.close(session_id)
    return web.json_response({"closed": session_id})


async def join(request: web.Request) -> web.Response:
    """Join with a signed challenge; returns the participant and its token."""
    session_id = request.match_info["session_id"]
    service = request.app[SERVICE]
    session_id_of(session_id, NotFoundError)  # no bridging attempts for ids nobody could have
    # A session another node hosts is bridged here first (404 before spending the challenge).
    await service.ensure(session_id)
    service.get(session_id)
    body = await _body(request)
    name = participant_name(body.get("name", "musician"))
    address = _prove(request, body)
    participant = service.join(session_id, address, name, body.get("invite"))
    return web.json_response(
        {
            "participant": participant.public(),
            "token": participant.token,
            "session": service.get(session_id).public(),
        },
        status=201,
    )


async def rtc(request: web.Request) -> web.Response:
    """WebRTC offer → answer for the participant's audio."""
    session_id, participant = _participant(request)
    body = await _body(request)
    if body.get("type", "offer") != "offer":
        raise InputError('type must be "offer"')
    transport = body.get("transport", "rtp")
    if transport not in TRANSPORTS:
        raise InputError('transport must be "rtp" or "datachannel"')
    sdp = validate_offer(body.get("sdp"), transport)
    answer = await request.app[SERVICE].connect(session_id, participant, sdp, transport)
    return web.json_response({"type": "answer", "sdp": answer, "transport": transport})


async def leave(request: web.Request) -> web.Response:
    """Leave the session."""
    session_id, participant = _participant(request)
    await request.app[SERVICE].leave(session_id, participant)
    return web.json_response({"left": participant.id})


async def proof(request: web.Request) -> web.Response:
    """A bridged musician's signature over the hosting node's challenge, relayed to it."""
    session_id, participant = _participant(request)
    body = await _body(request)
    federation = getattr(request.app[SERVICE], "federation", None)
    if federation is None:
        raise SessionError("this node bridges no sessions (p2p is off)")
    sent = federation.relay_proof(session_id, participant, body.get("signature"))
    return web.json_response({"relayed": sent})


async def remove(request: web.Request) -> web.Response:
    """Owner removes a participant."""
    session_id, participant = _participant(request)
    service = request.app[SERVICE]
    service.get(session_id).require_owner(participant)
    target = request.match_info["participant_id"]
    if target == participant.id:
        raise InputError("the owner cannot remove themself; leave or close the session")
    await service.remove(session_id, target)
    return web.json_response({"removed": target})


def _apply_control(
    service: JamService, session_id: str, participant: Any, body: dict[str, Any]
) -> None:
    kind = body.get("type")
    if kind == "pose":
        if "x" not in body and "y" not in body and not {"yaw_deg", "pitch_deg"} & set(body):
            raise InputError("a pose needs x and y, yaw_deg/pitch_deg, or both")
        if "x" in body or "y" in body:
            x, y = parse_position(body)
            service.move(session_id, participant, x, y)
        if "yaw_deg" in body or "pitch_deg" in body:
            yaw, pitch = parse_orientation(body, participant.yaw_deg, participant.pitch_deg)
            service.turn(session_id, participant, yaw, pitch)
    elif kind == "render":
        binaural = body.get("binaural", participant.binaural)
        room = body.get("room", participant.room)
        if not isinstance(binaural, bool) or not isinstance(room, bool):
            raise InputError("binaural and room must be true or false")
        service.set_render(session_id, participant, binaural, room)
    elif kind == "gain":
        source = body.get("source")
        if not isinstance(source, str):
            raise InputError("source must be a participant id")
        muted = body.get("muted", False)
        if not isinstance(muted, bool):
            raise InputError("muted must be true or false")
        gain = 0.0 if muted else _number(body, "gain", 0.0, 4.0, 1.0)
        service.set_mix(session_id, participant, source, gain)
    elif kind == "input_gain":
        service.set_input_gain(session_id, participant, _number(body, "gain", 0.0, 4.0, 1.0))
    elif kind == "monitor":
        on = body.get("on")
        if not isinstance(on, bool):
            raise InputError("on must be true or false")
        service.set_monitor(session_id, participant, on)
    elif kind == "click":
        on = body.get("on")
        if not isinstance(on, bool):
            raise InputError("on must be true or false")
        service.set_click(session_id, participant, on)
    elif kind == "chat":
        service.chat(session_id, participant, parse_chat(body))
    else:
        raise InputError(
            'type must be one of "pose", "render", "gain", "input_gain", "monitor", "click", "chat"'
        )


async def control(request: web.Request) -> web.Response:
    """Pose, personal-mix gains, self-monitor, click and chat (also over the WebSocket)."""
    session_id, participant = _participant(request)
    body = await _body(request)
    _apply_control(request.app[SERVICE], session_id, participant, body)
    return web.json_response({"ok": True})


async def recording(request: web.Request) -> web.Response:
    """Owner starts or stops recording: as a participant (Bearer token), or, from outside
    the session, with a signed sign-in challenge (``address``, ``nonce``, ``signature``)."""
    body = await _body(request)
    service = request.app[SERVICE]
    if "Authorization" in request.headers or "token" in request.query:
        session_id, participant = _participant(request)
        service.get(session_id).require_owner(participant)
    else:
        session_id = request.match_info["session_id"]
        if _prove(request, body) != service.get(session_id).owner:
            raise ForbiddenError("only the session's owner starts or stops recording")
    action = body.get("action")
    if action == "start":
        return web.json_response({"recording": service.start_recording(session_id)}, status=201)
    if action == "stop":
        row = service.stop_recording(session_id)
        row["record"] = await service.recordings.record(row["id"])
        return web.json_response(_public_recording(row))
    raise InputError('action must be "start" or "stop"')


def _public_recording(row: dict[str, Any]) -> dict[str, Any]:
    """A recording as the API shows it: no file-system paths."""
    return {k: v for k, v in row.items() if k != "path"}


async def list_recordings(request: web.Request) -> web.Response:
    """Recordings of a session, with contribution stats."""
    service = request.app[SERVICE]
    rows = service.store.recordings(session_id=request.match_info["session_id"])
    for row in rows:
        row["contributions"] = service.store.contributions(row["id"])
        row["sealed"] = service.store.record(row["id"]) is not None
    return web.json_response({"recordings": [_public_recording(row) for row in rows]})


async def show_recording(request: web.Request) -> web.Response:
    """One recording with contributions and its signed contribution record."""
    service = request.app[SERVICE]
    recording_id = request.match_info["recording_id"]
    row = service.store.recording(recording_id)
    if row is None:
        raise NotFoundError("no such recording")
    row["record"] = await service.recordings.record(recording_id)
    return web.json_response(_public_recording(row))


async def recording_file(request: web.Request) -> web.StreamResponse:
    """A take's mix or one stem (WAV), for the session's participants (their token) and its
    owner; with HTTP range requests."""
    service = request.app[SERVICE]
    row = service.store.recording(request.match_info["recording_id"])
    if row is None:
        raise NotFoundError("no such recording")
    session = service.find(row["session_id"])
    if session is None:
        raise NotFoundError("the session has ended: its recordings are served to nobody here")
    session.by_token(_bearer(request))  # a participant of that session (the owner included)
    name = request.match_info["name"]
    if name != "mix.wav" and not STEM_RE.match(name):
        raise NotFoundError(f"no file {name!r}: a take has mix.wav and stem-<participant>.wav")
    path = Path(row["path"]) / name
    if not path.is_file():
        raise NotFoundError(f"{name} is missing on this node")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "audio/wav",
            "Content-Disposition": f'attachment; filename="{row["id"]}-{name}"',
            "Cache-Control": "private, no-store",
        },
    )


async def verify_record(request: web.Request) -> web.Response:
    """Check a signed contribution record: who signed it (400 if the signature is wrong)."""
    body = await _body(request)
    signer = records.verify(body)
    return web.json_response({"valid": True, "signer": signer})


async def events(request: web.Request) -> web.WebSocketResponse:
    """WebSocket: session events out; pose/gain/click/chat/ping in."""
    session_id, participant = _participant(request)
    service = request.app[SERVICE]
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=8 * 1024)
    await ws.prepare(request)
    sub = service.subscribe(session_id, participant.id)
    await ws.send_json({"type": "session", "session": service.get(session_id).public()})

    async def pump() -> None:
        while True:
            event = await sub.queue.get()
            if event is None:
                # Closed by the node: they left, were removed, or the session ended.
                await ws.close(code=WSCloseCode.GOING_AWAY, message=sub.reason.encode()[:120])
                return
            try:
                await ws.send_json(event.wire())
            except ConnectionError:
                return  # the client went away; the reader below ends too

    sender = asyncio.create_task(pump())
    try:
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                body = json.loads(message.data, parse_constant=reject_constant)
                if not isinstance(body, dict):
                    raise InputError("messages must be JSON objects")
                if body.get("type") == "ping":
                    t = body.get("t")
                    await ws.send_json(
                        {
                            "type": "pong",
                            "t": t if _finite(t) else None,
                            "server_time": time.time(),
                        }
                    )
                    continue
                _apply_control(service, session_id, participant, body)
            except (ValueError, TypeError, ArithmeticError, JamnetError) as exc:
                await ws.send_json({"type": "error", "error": str(exc)})
            session = service.find(session_id)
            if session is None or participant.id not in session.participants:
                break
    finally:
        sender.cancel()
        service.unsubscribe(sub)
        service.socket_closed(session_id, participant)
    return ws


def mounted_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every API route this app serves (HEAD and static files aside)."""
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path and route.method != "HEAD" and path.startswith(("/api/", "/metrics")):
            out.add((route.method, path))
    return out


async def openapi_document(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 description of the routes this node serves."""
    return web.json_response(document(mounted_routes(request.app)))


async def index(request: web.Request) -> web.FileResponse:
    """The web client."""
    return web.FileResponse(WEB_DIR / "index.html")


async def vendor(request: web.Request) -> web.FileResponse:
    """Third-party browser libraries installed by npm (see package.json)."""
    name = request.match_info["name"]
    relative = VENDOR_FILES.get(name)
    if relative is None:
        raise NotFoundError(f"no vendor file {name!r}")
    path = request.app[ROOT] / relative
    if not path.is_file():
        raise NotFoundError(f"{relative} is missing: run `make install` (npm ci)")
    return web.FileResponse(path)


def build_app(
    service: JamService,
    challenges: ChallengeBook,
    clock: MixClocks,
    metrics_: Metrics,
    max_body_bytes: int,
    root: Path,
    chain: ChainService | None = None,
    ai: AiService | None = None,
    p2p: P2PService | None = None,
    loop: tuple[Any, Any, Any] | None = None,
    body_timeout_s: float = 10.0,
    operator: Any = None,
) -> web.Application:
    """The aiohttp application with every route."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=max_body_bytes)
    app[SERVICE] = service
    app[CHALLENGES] = challenges
    app[CLOCK] = clock
    app[CHAIN] = chain
    app[METRICS] = metrics_
    app[ROOT] = root
    app[BODY_TIMEOUT] = body_timeout_s
    app[P2P_ON] = p2p is not None
    app[OPERATOR] = operator
    app[PROXIES] = networks(service.config.http.trusted_proxies)
    app[CHALLENGE_LIMIT] = PerMinute(service.config.session.challenges_per_minute)
    app.router.add_get("/api/openapi.json", openapi_document)
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/config", client_config)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/chain", chain_info)
    app.router.add_post("/api/faucet", faucet)
    app.router.add_get("/api/chain/accounts/{address}", chain_account)
    app.router.add_get("/api/chain/works/{work_id}", chain_work)
    app.router.add_get("/api/chain/proposals", chain_proposals)
    app.router.add_get("/api/chain/operators", chain_operators)
    app.router.add_get("/api/chain/rewards", chain_rewards)
    app.router.add_get("/api/chain/events", chain_events)
    app.router.add_post("/api/challenges", challenge)
    app.router.add_get("/api/sessions", list_sessions)
    app.router.add_post("/api/sessions", create_session)
    app.router.add_get("/api/sessions/{session_id}", show_session)
    app.router.add_patch("/api/sessions/{session_id}", update_session)
    app.router.add_delete("/api/sessions/{session_id}", close_session)
    app.router.add_post("/api/sessions/{session_id}/join", join)
    app.router.add_post("/api/sessions/{session_id}/rtc", rtc)
    app.router.add_post("/api/sessions/{session_id}/leave", leave)
    app.router.add_post("/api/sessions/{session_id}/proof", proof)
    app.router.add_post("/api/sessions/{session_id}/control", control)
    app.router.add_delete("/api/sessions/{session_id}/participants/{participant_id}", remove)
    app.router.add_post("/api/sessions/{session_id}/recording", recording)
    app.router.add_get("/api/sessions/{session_id}/recordings", list_recordings)
    app.router.add_get("/api/recordings/{recording_id}", show_recording)
    app.router.add_get("/api/recordings/{recording_id}/files/{name}", recording_file)
    app.router.add_post("/api/records/verify", verify_record)
    app.router.add_get("/api/sessions/{session_id}/events", events)
    if ai is not None:
        add_routes(app, ai)
    if p2p is not None:
        add_p2p_routes(app, p2p)
    if loop is not None:  # works, listens, royalties: only with a chain
        add_works_routes(app, *loop)
    app.router.add_get("/", index)
    app.router.add_get("/vendor/{name}", vendor)
    app.router.add_static("/static/", WEB_DIR)
    return app
