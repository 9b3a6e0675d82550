"""SQLite persistence for sessions, recordings and contribution stats.

One file in the data dir, WAL mode, every write in its own transaction, so a killed node
keeps everything committed before the kill.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from node.errors import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    tempo_bpm REAL NOT NULL,
    key TEXT NOT NULL,
    time_signature TEXT NOT NULL,
    private INTEGER NOT NULL,
    created_at REAL NOT NULL,
    closed_at REAL
);
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    started_at REAL NOT NULL,
    stopped_at REAL,
    state TEXT NOT NULL CHECK (state IN ('recording', 'finished', 'recovered')),
    path TEXT NOT NULL,
    frames INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS contributions (
    recording_id TEXT NOT NULL REFERENCES recordings(id),
    address TEXT NOT NULL,
    name TEXT NOT NULL,
    active_s REAL NOT NULL,
    rms REAL NOT NULL,
    frames INTEGER NOT NULL,
    stem TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (recording_id, address)
);
CREATE TABLE IF NOT EXISTS contribution_records (
    recording_id TEXT PRIMARY KEY REFERENCES recordings(id),
    sealed TEXT NOT NULL,
    signer TEXT NOT NULL,
    sealed_at REAL NOT NULL
);
"""


def open_sqlite(path: Path, schema: str) -> sqlite3.Connection:
    """An autocommit, WAL-mode connection with ``schema`` applied; StoreError if unusable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(schema)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from None
    return db


class Store:
    """The node's SQLite database (used from the event loop thread)."""

    def __init__(self, path: Path) -> None:
        self._db = open_sqlite(path, SCHEMA)
        try:
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(sessions)")}
            if "room" not in columns:  # added with spatial rooms; older files get it here
                self._db.execute("ALTER TABLE sessions ADD COLUMN room TEXT")
            if "chords" not in columns:  # added with the AI bandmate
                self._db.execute("ALTER TABLE sessions ADD COLUMN chords TEXT")
            if "frame_ms" not in columns:  # added with 5 and 10 ms frames; before: all 20
                self._db.execute(
                    "ALTER TABLE sessions ADD COLUMN frame_ms INTEGER NOT NULL DEFAULT 20"
                )
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(recordings)")}
            if "frame_samples" not in columns:
                self._db.execute(
                    "ALTER TABLE recordings ADD COLUMN frame_samples INTEGER NOT NULL DEFAULT 960"
                )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from None

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._db.close()

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self._db.execute(sql, args).fetchall()]

    # sessions
    def save_session(self, row: dict[str, Any]) -> None:
        """Insert or update a session."""
        self._db.execute(
            "INSERT INTO sessions (id, owner, name, tempo_bpm, key, time_signature, private,"
            " created_at, room, chords, frame_ms) VALUES (:id, :owner, :name, :tempo_bpm, :key,"
            " :time_signature, :private, :created_at, :room, :chords, :frame_ms)"
            " ON CONFLICT(id) DO UPDATE"
            " SET name=:name, tempo_bpm=:tempo_bpm, key=:key, time_signature=:time_signature,"
            " room=:room, chords=:chords",
            row,
        )

    def close_session(self, session_id: str) -> None:
        """Mark a session as ended."""
        self._db.execute("UPDATE sessions SET closed_at=? WHERE id=?", (time.time(), session_id))

    def session_owner(self, session_id: str) -> str | None:
        """The address that created a session (open or closed)."""
        rows = self._rows("SELECT owner FROM sessions WHERE id=?", (session_id,))
        return str(rows[0]["owner"]) if rows else None

    def open_sessions(self) -> list[dict[str, Any]]:
        """Sessions not closed, oldest first."""
        return self._rows("SELECT * FROM sessions WHERE closed_at IS NULL ORDER BY created_at")

    # recordings
    def start_recording(
        self, recording_id: str, session_id: str, path: str, frame_samples: int = 960
    ) -> None:
        """A recording began (its frames are ``frame_samples`` long)."""
        self._db.execute(
            "INSERT INTO recordings (id, session_id, started_at, state, path, frame_samples)"
            " VALUES (?, ?, ?, 'recording', ?, ?)",
            (recording_id, session_id, time.time(), path, frame_samples),
        )

    def finish_recording(self, recording_id: str, frames: int, state: str = "finished") -> None:
        """A recording ended cleanly (or was recovered after a crash)."""
        self._db.execute(
            "UPDATE recordings SET stopped_at=?, state=?, frames=? WHERE id=?",
            (time.time(), state, frames, recording_id),
        )

    def recordings(
        self, session_id: str | None = None, state: str | None = None
    ) -> list[dict[str, Any]]:
        """Recordings, newest first, optionally of one session or in one state."""
        sql, args = "SELECT * FROM recordings WHERE 1=1", list[str]()
        if session_id is not None:
            sql, args = sql + " AND session_id=?", [*args, session_id]
        if state is not None:
            sql, args = sql + " AND state=?", [*args, state]
        return self._rows(sql + " ORDER BY started_at DESC", tuple(args))

    def recording(self, recording_id: str) -> dict[str, Any] | None:
        """One recording with its contributions."""
        rows = self._rows("SELECT * FROM recordings WHERE id=?", (recording_id,))
        if not rows:
            return None
        rows[0]["contributions"] = self.contributions(recording_id)
        return rows[0]

    def save_contributions(self, recording_id: str, rows: list[dict[str, Any]]) -> None:
        """Upsert every contributor's running totals in one transaction."""
        now = time.time()
        try:
            self._db.execute("BEGIN")
            for row in rows:
                self._db.execute(
                    "INSERT INTO contributions (recording_id, address, name, active_s, rms,"
                    " frames, stem, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT(recording_id, address) DO UPDATE SET active_s=excluded.active_s,"
                    " rms=excluded.rms, frames=excluded.frames, updated_at=excluded.updated_at",
                    (
                        recording_id,
                        row["address"],
                        row["name"],
                        row["active_s"],
                        row["rms"],
                        row["frames"],
                        row["stem"],
                        now,
                    ),
                )
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._db.execute("ROLLBACK")
            raise StoreError(f"saving contributions failed: {exc}") from None

    def save_record(self, recording_id: str, sealed: str, signer: str) -> None:
        """Keep a recording's signed contribution record (written once; a repeat is a no-op)."""
        self._db.execute(
            "INSERT OR IGNORE INTO contribution_records (recording_id, sealed, signer, sealed_at)"
            " VALUES (?, ?, ?, ?)",
            (recording_id, sealed, signer, time.time()),
        )

    def record(self, recording_id: str) -> str | None:
        """A recording's signed contribution record (JSON), if it has been sealed."""
        rows = self._rows(
            "SELECT sealed FROM contribution_records WHERE recording_id=?", (recording_id,)
        )
        return str(rows[0]["sealed"]) if rows else None

    def unsealed(self) -> list[str]:
        """Finished (or recovered) recordings that have no contribution record yet."""
        rows = self._rows(
            "SELECT id FROM recordings WHERE state != 'recording' AND id NOT IN"
            " (SELECT recording_id FROM contribution_records) ORDER BY started_at"
        )
        return [str(row["id"]) for row in rows]

    def contributions(self, recording_id: str) -> list[dict[str, Any]]:
        """Per-contributor stats of a recording."""
        return self._rows(
            "SELECT address, name, active_s, rms, frames, stem FROM contributions"
            " WHERE recording_id=? ORDER BY address",
            (recording_id,),
        )
