"""The node's API described in OpenAPI 3.1, served at ``/api/openapi.json``.

One table (``OPERATIONS``) describes every route under ``/api`` and ``/metrics``: what it
takes, what it answers and who may call it. The served document lists only the routes this
node has mounted (works, royalties and the AI come with a chain and with models), and
tests/api/test_openapi.py checks the table against the real router both ways, then lets
schemathesis fuzz a live node against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import node

Schema = dict[str, Any]

ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "what was wrong, and what to do"}},
}
ADDRESS: Schema = {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}
SIGNATURE: Schema = {"type": "string", "pattern": "^0x[0-9a-fA-F]{130}$"}
HEX32: Schema = {"type": "string", "pattern": "^0x[0-9a-f]{64}$"}
NUMBER: Schema = {"type": "number"}
INTEGER: Schema = {"type": "integer"}
TEXT: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
ANY_OBJECT: Schema = {"type": "object"}


def obj(required: dict[str, Schema] | None = None, **optional: Schema) -> Schema:
    """A JSON object with these required and optional properties (more are allowed)."""
    required = required or {}
    schema: Schema = {"type": "object", "properties": {**required, **optional}}
    if required:
        schema["required"] = sorted(required)
    return schema


def array(items: Schema) -> Schema:
    """A JSON array of ``items``."""
    return {"type": "array", "items": items}


SIGNED_CHALLENGE = {"address": ADDRESS, "nonce": TEXT, "signature": SIGNATURE}
"""What proves an address: a challenge from POST /api/challenges, signed (EIP-191)."""
PARTICIPANT = obj({"id": TEXT, "address": TEXT, "name": TEXT, "kind": TEXT})
SESSION = obj(
    {
        "id": TEXT,
        "name": TEXT,
        "owner": TEXT,
        "tempo_bpm": NUMBER,
        "key": TEXT,
        "time_signature": TEXT,
        "frame_ms": INTEGER,
        "private": BOOL,
        "participants": array(PARTICIPANT),
        "max_participants": INTEGER,
    }
)
SESSION_SETTINGS: dict[str, Schema] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 64},
    "tempo_bpm": {"type": "number", "minimum": 20, "maximum": 300},
    "key": {"type": "string", "examples": ["C", "F#m", "Bb major"]},
    "time_signature": {"type": "string", "examples": ["4/4", "6/8"]},
    "private": BOOL,
    "chords": {"type": "string", "examples": ["C G Am F"]},
    "frame_ms": {"enum": [5, 10, 20]},
}
RECORDING = obj({"id": TEXT, "session_id": TEXT})
NOTE = obj({"onset": NUMBER, "duration": NUMBER, "pitch": {"type": ["integer", "null"]}})
AI_REPLY = obj({"tempo_bpm": NUMBER, "notes": array(NOTE), "midi_base64": TEXT})
COMPOSE_REPLY = obj(
    {
        "tempo_bpm": NUMBER,
        "notes": array(NOTE),
        "midi_base64": TEXT,
        "time_signature": TEXT,
        "requested": INTEGER,
        "ended_early": BOOL,
    },
    why=TEXT,
    pickup_beats=NUMBER,
)
BANDMATE = {
    "instrument": TEXT,
    "density": {"type": "number", "minimum": 0, "maximum": 1},
    "gain": NUMBER,
    "x": {"type": "number", "minimum": -10, "maximum": 10},
    "y": {"type": "number", "minimum": -10, "maximum": 10},
}
DRAFT = obj({"recording_id": TEXT, "state": TEXT})
CONTROL = obj(
    {"type": {"enum": ["pose", "render", "gain", "input_gain", "monitor", "click", "chat"]}},
    x=NUMBER,
    y=NUMBER,
    yaw_deg=NUMBER,
    pitch_deg=NUMBER,
    binaural=BOOL,
    room=BOOL,
    source=TEXT,
    gain=NUMBER,
    muted=BOOL,
    on=BOOL,
    text=TEXT,
)


@dataclass(frozen=True)
class Operation:
    """One route: method, path and what it takes and gives."""

    method: str
    path: str
    summary: str
    tag: str
    ok: int = 200
    reply: Schema = field(default_factory=lambda: ANY_OBJECT)
    body: Schema | None = None
    token: bool = False
    """Needs the participant token (``Authorization: Bearer``) of the session in the path."""
    query: dict[str, Schema] = field(default_factory=dict)
    content: str = "application/json"
    """The success reply's media type."""
    server_errors: tuple[int, ...] = ()
    """5xx replies that are the node's state, not the client's input (a chain unreachable,
    models not loaded)."""


CHAIN_DOWN = (502,)
OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/api/openapi.json", "This description", "node"),
    Operation(
        "GET",
        "/api/health",
        "Liveness: 200 while the mix clock ticks",
        "node",
        reply=obj({"status": TEXT, "version": TEXT, "sessions": INTEGER, "ticks": INTEGER}),
    ),
    Operation(
        "GET",
        "/api/config",
        "What clients need of the node's settings",
        "node",
        reply=obj({"frame_ms": INTEGER, "frame_sizes_ms": array(ANY_OBJECT)}),
    ),
    Operation("GET", "/metrics", "Prometheus metrics", "node", reply=TEXT, content="text/plain"),
    Operation(
        "POST",
        "/api/challenges",
        "A single-use sign-in challenge for an address (limited per client address)",
        "identity",
        body=obj({"address": ADDRESS}),
        reply=obj({"address": TEXT, "nonce": TEXT, "message": TEXT, "expires_at": NUMBER}),
    ),
    Operation(
        "GET",
        "/api/sessions",
        "Public sessions",
        "sessions",
        reply=obj({"sessions": array(SESSION)}),
    ),
    Operation(
        "POST",
        "/api/sessions",
        "Create a session (the challenge's signer owns it; limited per owner and address)",
        "sessions",
        ok=201,
        body=obj(
            {**SIGNED_CHALLENGE, "name": SESSION_SETTINGS["name"]},
            **{k: v for k, v in SESSION_SETTINGS.items() if k != "name"},
        ),
        reply=SESSION,
    ),
    Operation("GET", "/api/sessions/{session_id}", "One session", "sessions", reply=SESSION),
    Operation(
        "PATCH",
        "/api/sessions/{session_id}",
        "The owner changes tempo, metre, key, chords or room",
        "sessions",
        token=True,
        body=obj(
            tempo_bpm=SESSION_SETTINGS["tempo_bpm"],
            time_signature=SESSION_SETTINGS["time_signature"],
            key=SESSION_SETTINGS["key"],
            chords=SESSION_SETTINGS["chords"],
            room={"type": ["object", "null"]},
        ),
        reply=SESSION,
    ),
    Operation(
        "DELETE",
        "/api/sessions/{session_id}",
        "The owner ends the session",
        "sessions",
        token=True,
        reply=obj({"closed": TEXT}),
    ),
    Operation(
        "POST",
        "/api/sessions/{session_id}/join",
        "Join with a signed challenge; a second join with the same key replaces the first",
        "sessions",
        ok=201,
        body=obj(SIGNED_CHALLENGE, name={"type": "string", "maxLength": 32}, invite=TEXT),
        reply=obj({"participant": PARTICIPANT, "token": TEXT, "session": SESSION}),
    ),
    Operation(
        "POST",
        "/api/sessions/{session_id}/rtc",
        "WebRTC offer to answer for the participant's audio",
        "media",
        token=True,
        body=obj(
            {"sdp": TEXT}, type={"const": "offer"}, transport={"enum": ["rtp", "datachannel"]}
        ),
        reply=obj({"type": TEXT, "sdp": TEXT, "transport": TEXT}),
        server_errors=(502,),
    ),
    Operation(
        "POST",
        "/api/sessions/{session_id}/leave",
        "Leave the session",
        "sessions",
        token=True,
        reply=obj({"left": TEXT}),
    ),
    Operation(
        "POST",
        "/api/sessions/{session_id}/proof",
        "A bridged musician's signature over the hosting node's challenge",
        "network",
        token=True,
        body=obj({"signature": SIGNATURE}),
        reply=obj({"relayed": BOOL}),
    ),
    Operation(
        "POST",
        "/api/sessions/{session_id}/control",
        "Pose, personal-mix gains, monitor, click and chat",
        "sessions",
        token=True,
        body=CONTROL,
        reply=obj({"ok": BOOL}),
    ),
    Operation(
        "DELETE",
        "/api/sessions/{session_id}/participants/{participant_id}",
        "The owner removes someone (they cannot rejoin)",
        "sessions",
        token=True,
        reply=obj({"removed": TEXT}),
    ),
    Operation(
        "POST",
        "/api/sessions/{session_id}/recording",
        "The owner starts or stops recording (token, or a signed challenge)",
        "recordings",
        body=obj({"action": {"enum": ["start", "stop"]}}, **SIGNED_CHALLENGE),
        reply=ANY_OBJECT,
    ),
    Operation(
        "GET",
        "/api/sessions/{session_id}/recordings",
        "A session's takes with contributions",
        "recordings",
        reply=obj({"recordings": array(RECORDING)}),
    ),
    Operation(
        "GET",
        "/api/sessions/{session_id}/events",
        "WebSocket of session events (pose, gains, chat and ping go in)",
        "sessions",
        token=True,
        ok=101,
        reply=TEXT,
        content="",
    ),
    Operation(
        "GET",
        "/api/recordings/{recording_id}",
        "One take and its signed record",
        "recordings",
        reply=RECORDING,
    ),
    Operation(
        "GET",
        "/api/recordings/{recording_id}/files/{name}",
        "A take's mix.wav or a stem, for the session's participants (ranges)",
        "recordings",
        token=True,
        reply={"type": "string", "format": "binary"},
        content="audio/wav",
    ),
    Operation(
        "POST",
        "/api/records/verify",
        "Check a signed contribution record",
        "recordings",
        body=ANY_OBJECT,
        reply=obj({"valid": BOOL, "signer": TEXT}),
    ),
    Operation(
        "GET",
        "/api/chain",
        "Chain id, RPC URL (devnet) and contract addresses",
        "chain",
        reply=obj({"mode": TEXT}),
    ),
    Operation(
        "POST",
        "/api/faucet",
        "Devnet: gas and some JAM for a new key (limited per address and client)",
        "chain",
        body=obj({"address": ADDRESS}),
        server_errors=CHAIN_DOWN,
    ),
    Operation(
        "GET",
        "/api/chain/accounts/{address}",
        "JAM, ETH, votes and delegate of an address",
        "chain",
        server_errors=CHAIN_DOWN,
    ),
    Operation(
        "GET",
        "/api/chain/works/{work_id}",
        "A registered work, its split and what each contributor is owed",
        "chain",
        server_errors=CHAIN_DOWN,
    ),
    Operation(
        "GET",
        "/api/chain/proposals",
        "Governance proposals with state and tallies",
        "chain",
        reply=obj({"proposals": array(ANY_OBJECT)}),
        server_errors=CHAIN_DOWN,
    ),
    Operation(
        "GET",
        "/api/chain/operators",
        "Registered node operators and the registry's parameters",
        "chain",
        server_errors=CHAIN_DOWN,
    ),
    Operation(
        "GET",
        "/api/chain/rewards",
        "Node operators' rewards: the pot, the quality formula, every report and its share,"
        " and this node's own metering and reports",
        "chain",
        server_errors=CHAIN_DOWN,
    ),
    Operation(
        "GET",
        "/api/chain/events",
        "Indexed contract events, newest first",
        "chain",
        query={
            "contract": TEXT,
            "name": TEXT,
            "limit": {"type": "string", "pattern": "^[0-9]{1,4}$"},
        },
        reply=obj({"events": array(ANY_OBJECT)}),
        server_errors=CHAIN_DOWN,
    ),
    Operation("GET", "/api/network", "The network as this node sees it", "network"),
    Operation(
        "GET",
        "/api/directory",
        "Public sessions across the network",
        "network",
        reply=obj({"sessions": array(ANY_OBJECT)}),
    ),
    Operation(
        "GET",
        "/api/ai/models",
        "AI status and the shipped models' cards",
        "ai",
        reply=obj({"status": TEXT}),
    ),
    Operation(
        "POST",
        "/api/ai/compose",
        "Continue a seed melody (JSON, or a MIDI file with the options in the query)",
        "ai",
        body=obj(
            {},
            seed={"type": "string", "examples": ["C4:4 D4:4 E4:8"]},
            seed_work=INTEGER,
            key=TEXT,
            notes={"type": "integer", "minimum": 1, "maximum": 256},
            temperature={"type": "number", "minimum": 0.1, "maximum": 3},
            tempo_bpm=SESSION_SETTINGS["tempo_bpm"],
            random_seed=INTEGER,
            time_signature=SESSION_SETTINGS["time_signature"],
            pickup_beats={"type": "number", "minimum": 0, "maximum": 16},
            session=TEXT,
        ),
        query={"format": {"enum": ["json", "midi"]}},
        reply=COMPOSE_REPLY,
        server_errors=(503,),
    ),
    Operation(
        "POST",
        "/api/ai/improvise",
        "Bars over a chord progression from the GAN",
        "ai",
        body=obj(
            {"chords": SESSION_SETTINGS["chords"]},
            key=TEXT,
            density={"type": "number", "minimum": 0, "maximum": 1},
            tempo_bpm=SESSION_SETTINGS["tempo_bpm"],
            random_seed=INTEGER,
        ),
        query={"format": {"enum": ["json", "midi"]}},
        reply=AI_REPLY,
        server_errors=(503,),
    ),
    Operation(
        "POST",
        "/api/sessions/{session_id}/bandmate",
        "The owner invites the AI bandmate (seed_work: over a registered work's harmony)",
        "ai",
        ok=201,
        token=True,
        body=obj(**BANDMATE, seed_work={"type": "integer", "minimum": 0}),
        server_errors=(503,),
    ),
    Operation(
        "PATCH",
        "/api/sessions/{session_id}/bandmate",
        "The owner changes the bandmate",
        "ai",
        token=True,
        body=obj(**BANDMATE),
        server_errors=(503,),
    ),
    Operation(
        "DELETE",
        "/api/sessions/{session_id}/bandmate",
        "The owner sends the bandmate away",
        "ai",
        token=True,
        reply=obj({"removed": BOOL}),
    ),
    Operation(
        "GET",
        "/api/recordings/{recording_id}/work",
        "A take's work: proposed split, consents, what to sign",
        "works",
        reply=DRAFT,
        server_errors=CHAIN_DOWN,
    ),
    Operation(
        "PUT",
        "/api/recordings/{recording_id}/work/split",
        "The session owner sets the split (signed); consents start over",
        "works",
        body=obj({"split": ANY_OBJECT, "signed_at": INTEGER, "signature": SIGNATURE}),
        reply=DRAFT,
        server_errors=CHAIN_DOWN,
    ),
    Operation(
        "PUT",
        "/api/recordings/{recording_id}/work/parents",
        "The session owner names the take's parent works (signed); consents start over",
        "works",
        body=obj(
            {"parents": array(INTEGER), "signed_at": INTEGER, "signature": SIGNATURE},
            derivative_bps=INTEGER,
        ),
        reply=DRAFT,
        server_errors=CHAIN_DOWN,
    ),
    Operation(
        "POST",
        "/api/recordings/{recording_id}/work/consents",
        "A contributor's EIP-712 consent; the last one queues the registration",
        "works",
        body=obj({"address": ADDRESS, "signature": SIGNATURE}),
        reply=DRAFT,
        server_errors=CHAIN_DOWN,
    ),
    Operation(
        "GET",
        "/api/works",
        "Works drafted from this node's takes",
        "works",
        reply=obj({"works": array(ANY_OBJECT)}),
        server_errors=CHAIN_DOWN,
    ),
    Operation(
        "POST",
        "/api/works/{work_id}/plays",
        "Start a play of a registered work for a listener key",
        "works",
        ok=201,
        body=obj({"listener": ADDRESS}),
    ),
    Operation(
        "POST",
        "/api/plays/{play_id}/receipt",
        "A signed listen receipt after at least 30 s of playback",
        "works",
        ok=201,
        body=obj({"played_ms": INTEGER, "signature": SIGNATURE}),
    ),
    Operation(
        "GET",
        "/api/content/resolve",
        "A content URI to the URL of the node that serves it",
        "works",
        query={"uri": TEXT},
        reply=obj({"uri": TEXT, "url": TEXT}),
        server_errors=CHAIN_DOWN,
    ),
    Operation(
        "GET",
        "/api/content/{content_hash}",
        "A registered work's audio (ranges)",
        "works",
        reply={"type": "string", "format": "binary"},
        content="audio/wav",
    ),
    Operation(
        "GET",
        "/api/royalties",
        "The pool and every royalty period",
        "works",
        reply=obj({"periods": array(ANY_OBJECT)}),
        server_errors=CHAIN_DOWN,
    ),
    Operation(
        "POST",
        "/api/royalties/close",
        "The node's key holder closes the open period (signed)",
        "works",
        body=obj({"period": INTEGER, "signed_at": INTEGER, "signature": SIGNATURE}),
        server_errors=CHAIN_DOWN,
    ),
)


PATH_PARAMS: dict[str, Schema] = {
    "address": ADDRESS,
    "work_id": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    "content_hash": {"type": "string", "pattern": "^(0x)?[0-9a-f]{64}$"},
    "play_id": HEX32,
    "name": {"type": "string", "examples": ["mix.wav"]},
}


def _parameters(op: Operation) -> list[Schema]:
    params: list[Schema] = []
    for part in op.path.split("/"):
        if part.startswith("{"):
            name = part[1:-1]
            schema = PATH_PARAMS.get(name, TEXT)
            params.append({"name": name, "in": "path", "required": True, "schema": schema})
    for name, schema in op.query.items():
        params.append({"name": name, "in": "query", "required": False, "schema": schema})
    return params


def _responses(op: Operation) -> Schema:
    error = {"content": {"application/json": {"schema": ERROR}}}
    ok: Schema = {"description": op.summary}
    if op.content:
        ok["content"] = {op.content: {"schema": op.reply}}
    responses: Schema = {str(op.ok): ok, "4XX": {"description": "refused", **error}}
    if op.ok == 101:
        responses["200"] = {"description": "not a WebSocket handshake"}
    if op.content == "audio/wav":
        responses["206"] = {"description": "a byte range", "content": ok["content"]}
    if op.path == "/api/sessions/{session_id}/recording":
        responses["201"] = {"description": "recording started", **error}
        responses["201"]["content"] = {"application/json": {"schema": ANY_OBJECT}}
    for status in op.server_errors:
        responses[str(status)] = {"description": "a service the node depends on is down", **error}
    return responses


def _operation(op: Operation) -> Schema:
    out: Schema = {
        "summary": op.summary,
        "operationId": f"{op.method.lower()} {op.path}",
        "tags": [op.tag],
        "parameters": _parameters(op),
        "responses": _responses(op),
    }
    if op.token:
        out["security"] = [{"participant": []}]
    if op.body is not None:
        out["requestBody"] = {
            "required": op.method != "PATCH",
            "content": {"application/json": {"schema": op.body}},
        }
    return out


def document(mounted: set[tuple[str, str]] | None = None) -> Schema:
    """The OpenAPI 3.1 document; only the ``(method, path)`` routes in ``mounted`` when given."""
    paths: dict[str, Schema] = {}
    for op in OPERATIONS:
        if mounted is not None and (op.method, op.path) not in mounted:
            continue
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jamnet node API",
            "version": node.__version__,
            "description": (
                "A jamnet node: sessions, WebRTC audio, recordings, works, royalties, "
                'the chain and the AI bandmate. Every refusal is JSON {"error": ...} '
                "with a 4xx status."
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "participant": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the token a join returns (also ?token= for WebSockets)",
                }
            }
        },
    }
