"""AI routes: the shipped models, compose, improvise and the session's bandmate.

    GET    /api/ai/models
    POST   /api/ai/compose      {"seed": "C4:4 D4:4 E4:8", "key": "C", "notes": 32, ...}
                                 or a MIDI file (Content-Type: audio/midi) with ?key=&notes=
    POST   /api/ai/improvise    {"chords": "C G Am F", "key": "C", "density": 0.5, ...}
    POST   /api/sessions/{id}/bandmate   owner: {"instrument", "density", "gain", "x", "y",
                                         "seed_work"} (a work: play over its harmony)
    PATCH  /api/sessions/{id}/bandmate   owner: the same fields
    DELETE /api/sessions/{id}/bandmate   owner

Compose and improvise answer JSON (notes and the MIDI file in base64), or the MIDI file
itself with ``?format=midi``.
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from node.ai.midi import from_midi, midi_time_signature, parse_seed, to_midi
from node.ai.music import (
    MAX_HARMONY_BARS,
    NOTES_PER_BAR,
    bar_steps_of,
    harmonize,
    parse_chords,
    pickup_steps_of,
)
from node.ai.service import AiService
from node.api.body import read_body
from node.errors import InputError, NotFoundError
from node.lineage import SEED_NOTES
from node.session.session import _number, parse_position
from training.tokenize import Note

AI = web.AppKey("ai", AiService)
MIDI_TYPES = ("audio/midi", "audio/x-midi", "application/x-midi")


def _key(value: object) -> str:
    from node.session.session import KEY_RE

    if value is None:
        return "C"
    if not isinstance(value, str) or not KEY_RE.match(value):
        raise InputError('key must be a note name with optional mode, e.g. "C", "F#m"')
    return value


def _seed_value(body: dict[str, Any]) -> int | None:
    value = body.get("random_seed")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise InputError("random_seed must be an integer 0..2^31-1")
    return value


def _reply(
    request: web.Request, notes: list[Note], tempo: float, extra: dict[str, Any]
) -> web.Response:
    midi = to_midi(notes, tempo)
    if request.query.get("format") == "midi":
        headers = {"Content-Disposition": 'attachment; filename="jamnet.mid"'}
        if extra.get("ended_early"):
            headers["X-Jamnet-Ended-Early"] = f"{len(notes)} of {extra['requested']} notes"
        return web.Response(body=midi, content_type="audio/midi", headers=headers)
    return web.json_response(
        {
            **extra,
            "tempo_bpm": tempo,
            "notes": [{"onset": n.onset, "duration": n.duration, "pitch": n.pitch} for n in notes],
            "midi_base64": base64.b64encode(midi).decode(),
        }
    )


async def _json_or_query(request: web.Request) -> tuple[dict[str, Any], bytes | None]:
    if request.content_type in MIDI_TYPES:
        return dict(request.query), await read_body(request)
    from node.api.server import _body

    return await _body(request), None


def _query_numbers(body: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:  # query-string values arrive as text
        if isinstance(body.get(name), str):
            try:
                body[name] = float(body[name]) if "." in body[name] else int(body[name])
            except ValueError:
                raise InputError(f"{name} must be a number") from None


async def models(request: web.Request) -> web.Response:
    """Status of the AI and the cards of the shipped models."""
    return web.json_response(request.app[AI].info())


async def compose(request: web.Request) -> web.StreamResponse:
    """Continue a seed melody, in a metre (``time_signature``; default the ``session``'s, then
    a MIDI seed's own, then 4/4) with an optional pickup (``pickup_beats``)."""
    ai = request.app[AI]
    composer = ai.composer_ready
    body, midi = await _json_or_query(request)
    _query_numbers(body, ("notes", "temperature", "tempo_bpm", "random_seed", "pickup_beats"))
    metre = _metre(request, body, midi)
    seed_work = _seed_work(request, body)
    if seed_work is not None:
        seed = seed_work[1]
    elif midi is not None:
        seed = from_midi(midi, bar_steps_of(metre))
    else:
        text = body.get("seed")
        if not isinstance(text, str):
            raise InputError(
                'seed must be notes like "C4:4 D4:4 E4:8" (or POST a MIDI file, or name a'
                " registered work as seed_work)"
            )
        seed = parse_seed(text)
    key = _key(body.get("key"))
    count = int(_number(body, "notes", 1, 256, 32))
    temperature = _number(body, "temperature", 0.1, 3.0, 1.0)
    tempo = _number(body, "tempo_bpm", 20, 300, 120.0)
    pickup = pickup_steps_of(_number(body, "pickup_beats", 0, 16, 0), metre)
    random_seed = _seed_value(body)
    made = await ai.run(
        lambda: composer.compose(seed, key, count, temperature, random_seed, metre, pickup)
    )
    beats, unit = metre
    extra: dict[str, Any] = {
        "key": key,
        "seed_notes": len(seed),
        "time_signature": f"{beats}/{unit}",
        "pickup_beats": pickup * unit / 16,
        "requested": count,
        "ended_early": made.ended_early,
    }
    if seed_work is not None:
        extra["seed_work"] = seed_work[0]
    if made.ended_early:
        extra["why"] = (
            f"the model ended the piece after {len(made.notes)} of the {count} notes asked "
            "(its end-of-piece token): ask again with another random_seed for a longer one"
        )
    return _reply(request, made.notes, tempo, extra)


def _seed_work(request: web.Request, body: dict[str, Any]) -> tuple[int, list[Note]] | None:
    """A registered work's opening as the seed (``seed_work``). With ``session`` (and that
    session's participant token) the session is marked as derived from the work: its takes are
    drafted with the work as a parent."""
    from node.api.server import SERVICE, _bearer

    found = _work_melody(request, body.get("seed_work"), SEED_NOTES)
    if found is None:
        return None
    work_id, pitches = found
    session_id = body.get("session")
    if session_id is not None:
        if not isinstance(session_id, str):
            raise InputError("session must be a session id")
        request.app[SERVICE].get(session_id).by_token(_bearer(request))
        _lineage(request).note(session_id, work_id, "compose")
    return work_id, [Note(4 * i, 4, pitch) for i, pitch in enumerate(pitches)]


def _lineage(request: web.Request) -> Any:
    from node.api.works import WORKS

    works = request.app.get(WORKS)
    if works is None:
        raise NotFoundError("this node has no chain, so no registered works to seed from")
    return works.lineage


def _work_melody(request: web.Request, value: object, notes: int) -> tuple[int, list[int]] | None:
    """``seed_work``: a registered work's id → (id, the first ``notes`` of its melody); None
    if unset."""
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdecimal() and len(value) < 19:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError("seed_work must be a registered work's id")
    pitches = _lineage(request).seed(value, notes)
    if pitches is None:
        raise NotFoundError(
            f"this node has no melody of work {value} (it keeps those of the works it registered)"
        )
    return value, pitches


def _metre(request: web.Request, body: dict[str, Any], midi: bytes | None) -> tuple[int, int]:
    """The compose request's metre: its own, its session's, its MIDI seed's, or 4/4."""
    from node.api.server import SERVICE
    from node.session.session import parse_time_signature

    if body.get("time_signature") is not None:
        return parse_time_signature(body["time_signature"])
    session_id = body.get("session")
    if session_id is not None:
        if not isinstance(session_id, str):
            raise InputError("session must be a session id")
        return request.app[SERVICE].get(session_id).settings.time_signature
    if midi is not None:
        found = midi_time_signature(midi)
        if found is not None:
            return found
    return (4, 4)


async def improvise(request: web.Request) -> web.StreamResponse:
    """Bars over a chord progression."""
    ai = request.app[AI]
    improviser = ai.improviser_ready
    from node.api.server import _body

    body = await _body(request)
    chords = parse_chords(body.get("chords"))
    key = _key(body.get("key"))
    density = _number(body, "density", 0.0, 1.0, 0.4)
    tempo = _number(body, "tempo_bpm", 20, 300, 120.0)
    random_seed = _seed_value(body)
    notes = await ai.run(lambda: improviser.improvise(chords, key, density, random_seed))
    return _reply(request, notes, tempo, {"key": key, "bars": len(chords)})


def _owner(request: web.Request) -> str:
    from node.api.server import _participant

    session_id, participant = _participant(request)
    from node.api.server import SERVICE

    request.app[SERVICE].get(session_id).require_owner(participant)
    return session_id


async def add_bandmate(request: web.Request) -> web.Response:
    """The owner invites the bandmate."""
    from node.api.server import _body

    session_id = _owner(request)
    body = await _body(request)
    unknown = set(body) - {"instrument", "density", "gain", "x", "y", "seed_work"}
    if unknown:
        raise InputError(f"unknown field {sorted(unknown)[0]!r}")
    x, y = parse_position({"x": body.get("x", 0.0), "y": body.get("y", 4.0)})
    seed = _work_melody(request, body.pop("seed_work", None), NOTES_PER_BAR * MAX_HARMONY_BARS)
    state = await request.app[AI].add_bandmate(session_id, body, x, y)
    if seed is not None:
        # Seeded from a work: the bandmate plays over the work's harmony (from its next bar),
        # and the session's takes are drafted as derivatives of the work.
        from node.api.server import SERVICE

        key, chords = harmonize(seed[1])
        request.app[SERVICE].update(session_id, None, None, key, False, chords)
        _lineage(request).note(session_id, seed[0], "bandmate")
        state = {**state, "seed_work": seed[0], "key": key, "chords": list(chords)}
    return web.json_response(state, status=201)


async def update_bandmate(request: web.Request) -> web.Response:
    """The owner changes the bandmate's instrument, density, gain or place."""
    from node.api.server import SERVICE, _body

    session_id = _owner(request)
    body = await _body(request)
    unknown = set(body) - {"instrument", "density", "gain", "x", "y"}
    if unknown:
        raise InputError(f"unknown field {sorted(unknown)[0]!r}")
    ai = request.app[AI]
    participant = ai.bandmate_participant(session_id)
    if "x" in body or "y" in body:
        x, y = parse_position(
            {"x": body.get("x", participant.x), "y": body.get("y", participant.y)}
        )
        request.app[SERVICE].move(session_id, participant, x, y)
    return web.json_response(ai.update_bandmate(session_id, body))


async def remove_bandmate(request: web.Request) -> web.Response:
    """The owner sends the bandmate away."""
    session_id = _owner(request)
    ai = request.app[AI]
    ai.bandmate_participant(session_id)  # 404 when there is none
    await ai.remove_bandmate(session_id)
    return web.json_response({"removed": True})


def add_routes(app: web.Application, ai: AiService) -> None:
    """Register the AI routes."""
    app[AI] = ai
    app.router.add_get("/api/ai/models", models)
    app.router.add_post("/api/ai/compose", compose)
    app.router.add_post("/api/ai/improvise", improvise)
    app.router.add_post("/api/sessions/{session_id}/bandmate", add_bandmate)
    app.router.add_patch("/api/sessions/{session_id}/bandmate", update_bandmate)
    app.router.add_delete("/api/sessions/{session_id}/bandmate", remove_bandmate)
