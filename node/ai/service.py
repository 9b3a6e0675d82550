"""The node's AI: model loading, compose/improvise requests and the bandmates.

Models load in a thread at start (the node serves meanwhile; AI requests answer 503 until
they are ready, or with the reason they failed — a checkpoint that does not match its card
is refused). All model work runs in one dedicated thread: compose and improvise requests
wait in a bounded queue (beyond ``ai.queue`` they get 503 at once), bandmate bars are made
there too, at most ``AHEAD_BARS`` per bandmate ahead of the one playing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from node.ai.bandmate import Bandmate, BandmateSettings, BarPlayer, Grid, schedule
from node.ai.music import Composer, Improviser, parse_chords
from node.ai.registry import BUNDLED_DIR, ModelError, ModelRegistry
from node.config import NodeConfig
from node.errors import JamnetError, NotFoundError, SessionError
from node.jam import JamService
from node.media import priority
from node.session.events import SessionChanged
from node.session.session import Participant

log = logging.getLogger(__name__)
T = TypeVar("T")
POLL_S = 0.05


class AiUnavailableError(JamnetError):
    """The models are not loaded (still loading, disabled or refused) or the queue is full
    (HTTP 503)."""


@dataclass
class _Playing:
    bandmate: Bandmate
    player: BarPlayer
    participant: Participant
    task: asyncio.Task[None] | None = None
    grid: Grid | None = None
    errors: int = 0
    late_bars: int = 0
    bars: list[int] = field(default_factory=list)


class AiService:
    """Composer, improviser and bandmates for one node."""

    def __init__(self, config: NodeConfig, jam: JamService) -> None:
        self.config = config
        self.jam = jam
        directory = Path(config.ai.models_dir) if config.ai.models_dir else BUNDLED_DIR
        self.registry = ModelRegistry(directory)
        self.composer: Composer | None = None
        self.improviser: Improviser | None = None
        self.status = "disabled" if not config.ai.enabled else "loading"
        self.error = ""
        # At the node's normal priority, below the event loop that creates it (node.media.priority).
        self._executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="ai-model", initializer=priority.normal
        )
        self._pending = 0
        self._loader: asyncio.Task[None] | None = None
        self._playing: dict[str, _Playing] = {}
        self._totals = {"bars": 0, "late_bars": 0, "errors": 0}

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Begin loading the models in the background."""
        if self.config.ai.enabled:
            self._loader = asyncio.create_task(self._load(), name="ai-load")

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            composer = await loop.run_in_executor(self._executor, self.registry.load, "composer")
            generator = await loop.run_in_executor(self._executor, self.registry.load, "improviser")
        except ModelError as exc:
            self.status, self.error = "failed", str(exc)
            log.error("AI models not loaded: %s", exc)
            return
        self.composer, self.improviser = Composer(composer), Improviser(generator)
        self.status = "ready"
        log.info("AI models loaded from %s", self.registry.directory)

    async def ready(self) -> None:
        """Wait for loading to finish (whatever its outcome)."""
        if self._loader is not None:
            await asyncio.shield(self._loader)

    async def stop(self) -> None:
        """Stop every bandmate and the model thread (idempotent)."""
        if self._loader is not None:
            self._loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loader
            self._loader = None
        for session_id in list(self._playing):
            await self.remove_bandmate(session_id)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _require(self) -> tuple[Composer, Improviser]:
        if self.composer is None or self.improviser is None:
            reason = {
                "disabled": "the AI is disabled on this node (ai.enabled = false)",
                "loading": "the models are still loading; try again in a moment",
                "failed": f"the models could not be loaded: {self.error}",
            }.get(self.status, self.status)
            raise AiUnavailableError(reason)
        return self.composer, self.improviser

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` in the model thread (503 when ``ai.queue`` requests already wait)."""
        if self._pending >= self.config.ai.queue:
            raise AiUnavailableError(f"the model is busy ({self._pending} requests waiting)")
        self._pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)
        finally:
            self._pending -= 1

    def info(self) -> dict[str, Any]:
        """Status and the model cards' summaries (for /api/ai/models)."""
        try:
            cards = self.registry.cards()
        except ModelError as exc:
            cards, self.error = {}, str(exc)
        return {
            "status": self.status,
            "error": self.error or None,
            "models": {
                name: {
                    "purpose": card.get("purpose"),
                    "sha256": card.get("sha256"),
                    "metrics": card.get("metrics"),
                    "command": card.get("command"),
                }
                for name, card in cards.items()
            },
            "bandmates": len(self._playing),
        }

    def stats(self) -> dict[str, float]:
        """Figures for /metrics."""
        live = {"bars": 0, "late_bars": 0, "errors": 0}
        for playing in self._playing.values():
            live["bars"] += playing.bandmate.generated - playing.late_bars
            live["late_bars"] += playing.late_bars
            live["errors"] += playing.errors
        return {
            "ready": float(self.status == "ready"),
            "queue": float(self._pending),
            "bandmates": float(len(self._playing)),
            **{key: float(self._totals[key] + live[key]) for key in live},
        }

    @property
    def composer_ready(self) -> Composer:
        """The composer, or 503."""
        return self._require()[0]

    @property
    def improviser_ready(self) -> Improviser:
        """The improviser, or 503."""
        return self._require()[1]

    # ------------------------------------------------------------ bandmates
    async def add_bandmate(
        self, session_id: str, body: dict[str, Any], x: float, y: float
    ) -> dict[str, Any]:
        """The owner invites the bandmate into a session."""
        improviser = self.improviser_ready
        session = self.jam.get(session_id)
        if session_id in self._playing:
            raise SessionError("this session already has a bandmate")
        if len(self._playing) >= self.config.ai.max_bandmates:
            raise SessionError(
                f"this node runs its maximum of {self.config.ai.max_bandmates} bandmates"
            )
        settings = BandmateSettings()
        settings.update(body)
        bandmate = Bandmate(
            improviser, settings, key=session.settings.key, seed=zlib.crc32(session_id.encode())
        )
        player = BarPlayer()
        participant = self.jam.add_local(session_id, f"AI bandmate ({settings.instrument})", player)
        playing = _Playing(bandmate, player, participant)
        self._playing[session_id] = playing
        self.jam.move(session_id, participant, x, y)
        playing.task = asyncio.create_task(self._play(session_id, playing), name="bandmate")
        return self._publish(session_id, playing)

    def update_bandmate(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """The owner changes instrument, density or gain."""
        playing = self._get(session_id)
        playing.bandmate.settings.update(body)
        playing.participant.name = f"AI bandmate ({playing.bandmate.settings.instrument})"
        return self._publish(session_id, playing)

    def bandmate_participant(self, session_id: str) -> Participant:
        """The bandmate's participant in a session."""
        return self._get(session_id).participant

    async def remove_bandmate(self, session_id: str) -> None:
        """The bandmate leaves (idempotent for a session that has none)."""
        playing = self._playing.pop(session_id, None)
        if playing is None:
            return
        self._retire(playing)
        if playing.task is not None:
            playing.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await playing.task
        with contextlib.suppress(NotFoundError):
            session = self.jam.get(session_id)
            session.bandmate = None
            if playing.participant.id in session.participants:
                await self.jam.leave(session_id, playing.participant)
            self.jam.publish(session_id, SessionChanged(session.public()))

    def _retire(self, playing: _Playing) -> None:
        self._totals["bars"] += playing.bandmate.generated - playing.late_bars
        self._totals["late_bars"] += playing.late_bars
        self._totals["errors"] += playing.errors

    def _get(self, session_id: str) -> _Playing:
        playing = self._playing.get(session_id)
        if playing is None:
            raise NotFoundError("this session has no bandmate")
        return playing

    def _publish(self, session_id: str, playing: _Playing) -> dict[str, Any]:
        settings = playing.bandmate.settings
        state = {
            "participant": playing.participant.id,
            "instrument": settings.instrument,
            "density": settings.density,
            "gain": settings.gain,
            "bars_played": playing.bandmate.generated,
        }
        session = self.jam.get(session_id)
        session.bandmate = state
        self.jam.publish(session_id, SessionChanged(session.public()))
        return state

    async def _play(self, session_id: str, playing: _Playing) -> None:
        loop = asyncio.get_running_loop()
        mixer = self.jam.mixer(session_id)
        sample_rate = mixer.sample_rate
        bandmate = playing.bandmate
        while True:
            try:
                session = self.jam.get(session_id)
            except NotFoundError:
                if self._playing.pop(session_id, None) is not None:
                    self._retire(playing)
                return  # the session closed
            if playing.participant.id not in session.participants:
                if self._playing.pop(session_id, None) is not None:
                    self._retire(playing)
                return  # the owner removed it like any participant
            bandmate.key = session.settings.key
            chords = list(session.settings.chords)
            bandmate.chords = parse_chords(chords) if chords else []
            unit = session.settings.time_signature[1]

            def grid_now(unit: int = unit) -> Grid:
                return Grid.of(mixer.metronome, unit)

            grid = grid_now()
            if grid != playing.grid:
                if playing.grid is not None:  # tempo or metre changed: re-plan
                    mixer.post(lambda: playing.player.drop_from(mixer.sample))
                    bandmate.next_bar = None
                playing.grid = grid
            for bar in bandmate.due(grid, mixer.sample):
                try:
                    rendered = await loop.run_in_executor(
                        self._executor, bandmate.render, grid, bar, sample_rate
                    )
                except RuntimeError:
                    return  # the executor shut down: the node is stopping
                except Exception:
                    playing.errors += 1
                    log.exception("bandmate bar %d failed", bar)
                    bandmate.next_bar = bar + 1
                    continue
                if rendered.start < mixer.sample:
                    playing.late_bars += 1  # made too late to start on time: skip it
                elif not schedule(mixer.post, playing.player, rendered, grid_now, grid):
                    break  # the grid moved while the bar was made
                bandmate.next_bar = bar + 1
            await asyncio.sleep(POLL_S)
