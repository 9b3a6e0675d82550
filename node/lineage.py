"""Where a take comes from: the registered works it derives from, and whether it copies one.

A session's lineage is the registered works that went into it: a ``compose`` seeded from a
work (``seed_work``) for the session. A take recorded in that session is drafted as a
derivative of those works (the most recent ``MAX_PARENTS``; the session owner can change the
parents), so the registration sends each its share.

Each take's melodies (each stem transcribed, ``node.similarity.transcribe``) are kept with its
draft and, once the work is registered, in this node's melody index. A new take's melodies are
checked against the index: the longest span it shares with a registered work it does not name
as a parent is reported; at ``FLAG_SPAN_NOTES`` the draft is flagged, at ``GATE_SPAN_NOTES``
its registration waits until the owner names that work as a parent. The index holds the works
this node registered (works from other nodes are checked where this node has their melodies).
"""

from __future__ import annotations

import json
import sqlite3
import time
import wave
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from node.similarity import FLAG_SPAN_NOTES, GATE_SPAN_NOTES, MelodyIndex, transcribe

SCHEMA = """
CREATE TABLE IF NOT EXISTS session_lineage (
    session_id TEXT NOT NULL,
    work_id INTEGER NOT NULL,
    how TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (session_id, work_id)
);
CREATE TABLE IF NOT EXISTS work_melodies (
    work_id INTEGER PRIMARY KEY,
    melodies TEXT NOT NULL
);
"""
MAX_PARENTS = 2
"""WorkRegistry.MAX_PARENTS."""
MAX_STEM_S = 15 * 60
"""Only a stem's first 15 minutes are transcribed (bounds the work per take)."""
SEED_NOTES = 16


def take_melodies(directory: Path, stems: Iterable[str]) -> list[list[int]]:
    """Each stem's melody (MIDI pitches), empty stems left out."""
    out = []
    for name in stems:
        path = directory / name
        try:
            with wave.open(str(path), "rb") as file:
                rate = file.getframerate()
                frames = file.readframes(min(file.getnframes(), rate * MAX_STEM_S))
                channels = file.getnchannels()
        except (OSError, wave.Error, EOFError):
            continue
        samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
        if channels > 1:
            samples = samples.reshape(-1, channels).mean(axis=1)
        pitches = transcribe(samples, rate)
        if len(pitches) > 1:
            out.append(pitches)
    return out


class Lineage:
    """Sessions' lineage and registered works' melodies, in the works database."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        db.executescript(SCHEMA)
        self._index: MelodyIndex | None = None

    def note(self, session_id: str, work_id: int, how: str) -> None:
        """Record that ``work_id`` went into ``session_id`` (again: moves it to the front)."""
        self._db.execute(
            "INSERT INTO session_lineage (session_id, work_id, how, at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(session_id, work_id) DO UPDATE SET how=excluded.how, at=excluded.at",
            (session_id, work_id, how, time.time()),
        )

    def of_session(self, session_id: str) -> list[dict[str, Any]]:
        """The works that went into a session, most recent first."""
        rows = self._db.execute(
            "SELECT work_id, how, at FROM session_lineage WHERE session_id = ? ORDER BY at DESC",
            (session_id,),
        ).fetchall()
        return [{"work": int(r[0]), "how": str(r[1]), "at": float(r[2])} for r in rows]

    def parents_for(self, session_id: str) -> list[int]:
        """A take's default parents: the session's most recent ``MAX_PARENTS`` source works."""
        return sorted(entry["work"] for entry in self.of_session(session_id)[:MAX_PARENTS])

    def save(self, work_id: int, melodies: list[list[int]]) -> None:
        """Keep a registered work's melodies (and index them)."""
        self._db.execute(
            "INSERT OR REPLACE INTO work_melodies (work_id, melodies) VALUES (?, ?)",
            (work_id, json.dumps(melodies)),
        )
        if self._index is not None:
            for melody in melodies:
                self._index.add_part(work_id, melody)

    def seed(self, work_id: int, notes: int = SEED_NOTES) -> list[int] | None:
        """The opening of a registered work's first melody (to seed a composition, or, longer,
        to harmonize for the bandmate)."""
        row = self._db.execute(
            "SELECT melodies FROM work_melodies WHERE work_id = ?", (work_id,)
        ).fetchone()
        if row is None:
            return None
        melodies = [m for m in json.loads(row[0]) if m]
        return melodies[0][:notes] if melodies else None

    def check(self, melodies: list[list[int]], parents: Iterable[int]) -> dict[str, Any] | None:
        """The registered work (not among ``parents``) sharing the longest span with any of
        these melodies, if it reaches the flag threshold."""
        index = self._load()
        best = None
        for melody in melodies:
            for match in index.query(melody, exclude=parents, limit=1):
                if best is None or match.span_notes > best.span_notes:
                    best = match
        if best is None or not best.flagged:
            return None
        return {
            "work": best.work,
            "span_notes": best.span_notes,
            "flagged": best.flagged,
            "gated": best.gated,
            "flag_at": FLAG_SPAN_NOTES,
            "gate_at": GATE_SPAN_NOTES,
        }

    def _load(self) -> MelodyIndex:
        if self._index is None:
            index = MelodyIndex()
            for work_id, text in self._db.execute("SELECT work_id, melodies FROM work_melodies"):
                for melody in json.loads(text):
                    index.add_part(int(work_id), melody)
            self._index = index
        return self._index
