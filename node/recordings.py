"""A session's recordings: start, stop, recover, and each contributor's running figures.

The ``Recorder`` (``node.media.recorder``) writes the WAV files off the mix thread; this keeps
SQLite in step: the recording's row, and every second each contributor's active seconds,
RMS level and frames, so a node killed mid-take keeps everything up to the last second.
Once a take has stopped, its contribution record is sealed (``node.records``: file hashes,
signed by the node's key) off the event loop; a node killed before that seals it at its next
start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from node import records
from node.config import NodeConfig
from node.errors import SessionError
from node.keys import node_key
from node.media.recorder import Recorder, recover
from node.session.mixer import SessionMixer
from node.session.session import Session
from node.store.db import Store

log = logging.getLogger(__name__)


@dataclass
class _Take:
    recording_id: str
    recorder: Recorder
    base: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    """Each slot's counters when the take started (frames, active frames, energy)."""


class Recordings:
    """Every session's current take and its contribution figures."""

    def __init__(self, config: NodeConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.directory = config.data_path / "recordings"
        self._takes: dict[str, _Take] = {}
        self._sealing: dict[str, asyncio.Task[None]] = {}
        self._account: LocalAccount | None = None

    def recover(self) -> None:
        """Repair the files of takes a crash interrupted and mark them recovered."""
        for row in self.store.recordings(state="recording"):
            frames = recover(Path(row["path"]), int(row.get("frame_samples") or 960))
            self.store.finish_recording(row["id"], frames, state="recovered")
            log.warning("recovered interrupted recording %s (%d frames)", row["id"], frames)

    def start(self, session: Session, mixer: SessionMixer) -> str:
        """Start recording stems and the mix; returns the recording id."""
        if session.id in self._takes:
            raise SessionError("this session is already recording")
        recording_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        directory = self.directory / session.id / recording_id
        recorder = Recorder(directory, mixer.sample_rate, mixer.frame_samples)
        self.store.start_recording(recording_id, session.id, str(directory), mixer.frame_samples)
        take = _Take(recording_id, recorder)
        take.base = {
            slot.key: (slot.counters.frames, slot.counters.active_frames, slot.counters.energy)
            for slot in mixer.slots
            if slot is not None
        }
        self._takes[session.id] = take
        session.recording_id = recording_id
        mixer.post(lambda: setattr(mixer, "recording_sink", recorder))
        return recording_id

    def stop(self, session: Session, mixer: SessionMixer) -> dict[str, Any]:
        """Stop recording; returns the finished recording with contributions."""
        take = self._takes.get(session.id)
        if take is None:
            raise SessionError("this session is not recording")
        self._finish(session, mixer, take)
        row = self.store.recording(take.recording_id)
        assert row is not None
        return row

    def stop_if_recording(self, session: Session, mixer: SessionMixer) -> None:
        """Stop the session's take, if it has one (closing, shutting down)."""
        take = self._takes.get(session.id)
        if take is not None:
            self._finish(session, mixer, take)

    def _finish(self, session: Session, mixer: SessionMixer, take: _Take) -> None:
        mixer.recording_sink = None  # the writer sees no frames after this tick
        self.save(session, mixer)
        frames = take.recorder.stop()
        self.store.finish_recording(take.recording_id, frames)
        del self._takes[session.id]
        session.recording_id = None
        self._seal_later(take.recording_id)
        if take.recorder.dropped:
            log.warning(
                "recording %s lost %d frames (the disk fell behind)",
                take.recording_id,
                take.recorder.dropped,
            )

    def save(self, session: Session, mixer: SessionMixer) -> None:
        """Write each contributor's running figures (every second, and as someone leaves)."""
        take = self._takes.get(session.id)
        if take is None:
            return
        frame_s = mixer.frame_samples / mixer.sample_rate
        rows = []
        for participant in session.participants.values():
            if participant.kind == "ai" or not participant.verified:
                # The bandmate has no address; a bridged participant who has not answered this
                # node's challenge has not proven theirs: neither is a contributor (both are
                # still in the mix and have their stems).
                continue
            slot = mixer.slots[participant.slot] if participant.slot >= 0 else None
            if slot is None:
                continue
            # Someone who joined during the recording has a fresh slot: counters start at 0.
            base = take.base.get(slot.key, (0, 0, 0.0))
            frames = slot.counters.frames - base[0]
            active = slot.counters.active_frames - base[1]
            energy = slot.counters.energy - base[2]
            rows.append(
                {
                    "address": participant.address,
                    "name": participant.name,
                    "active_s": round(active * frame_s, 3),
                    "rms": (energy / frames) ** 0.5 if frames else 0.0,
                    "frames": frames,
                    "stem": take.recorder.stem_name(slot.key),
                }
            )
        if rows:
            self.store.save_contributions(take.recording_id, rows)
        take.recorder.flush()

    # ------------------------------------------------------- contribution records
    def _seal_later(self, recording_id: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a script): the next start seals it
            return
        task = loop.create_task(self._seal(recording_id), name=f"seal-{recording_id}")
        self._sealing[recording_id] = task
        task.add_done_callback(lambda _task: self._sealing.pop(recording_id, None))

    def _key(self) -> LocalAccount:
        if self._account is None:
            self._account = node_key(self.config.chain.keyfile, self.config.data_path)
        return self._account

    async def _seal(self, recording_id: str) -> None:
        """Hash the take's files and sign its record (the hashing runs off the loop)."""
        row = self.store.recording(recording_id)
        if row is None or self.store.record(recording_id) is not None:
            return
        try:
            record = await asyncio.to_thread(records.build, row, Path(row["path"]))
            account = self._account if self._account else await asyncio.to_thread(self._key)
            sealed = records.sign(record, account)
        except Exception as exc:  # a missing key or unreadable files: retried at next start
            log.warning("recording %s: contribution record not sealed (%s)", recording_id, exc)
            return
        self.store.save_record(recording_id, records.dumps(sealed), sealed["signer"])
        log.info(
            "recording %s sealed: %d contributors, signed by %s",
            recording_id,
            len(record["contributors"]),
            sealed["signer"],
        )

    async def seal_missing(self) -> None:
        """Seal every finished take that has no record (a crash came between stop and seal)."""
        for recording_id in self.store.unsealed():
            self._seal_later(recording_id)  # at once, so a reader of its record waits for it
        await self.drain()

    async def record(self, recording_id: str) -> dict[str, Any] | None:
        """A take's signed contribution record (waits for a seal under way); None if none."""
        task = self._sealing.get(recording_id)
        if task is not None:
            await asyncio.shield(task)
        text = self.store.record(recording_id)
        return json.loads(text) if text is not None else None

    async def drain(self) -> None:
        """Let the seals under way finish (stopping the node)."""
        if self._sealing:
            await asyncio.gather(*self._sealing.values(), return_exceptions=True)
