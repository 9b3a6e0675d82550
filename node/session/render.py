"""Personal-mix renderers: turn every source frame into every listener's stereo frame.

A renderer sees the whole tick at once — all sources, all listeners — so it can share
per-source work (the [spatial] HRTF renderer computes each source's spectrum once) and do
per-pair work as one batched operation. The mixer owns the buffers; renderers never allocate
in ``render``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from node.spatial.room import Room

F32 = npt.NDArray[np.float32]
B8 = npt.NDArray[np.bool_]

STAGE_HALF_M = 10.0
"""The stage spans -10..10 m on both axes; +y is the front, listeners face +y."""


class Renderer(Protocol):
    """Mixes ``sources`` (S×N) into ``out_left``/``out_right`` (L×N) for every listener."""

    def set_geometry(self, positions: F32, orientations: F32 | None = None) -> None:
        """Stage positions (rows: slots; x, y in metres) and listener (yaw, pitch) in degrees."""

    def set_modes(self, binaural: B8, room: B8, distance: B8) -> None:
        """Per listener: binaural (else stereo panning), room, and the distance law, on/off."""

    def set_room(self, room: Room | None) -> None:
        """The session's room, or None for a dry stage."""

    def render(self, weights: F32, sources: F32, out_left: F32, out_right: F32) -> None:
        """``weights`` (L×S) holds each listener's gain for each source (0 = not heard)."""


class StereoPanner:
    """Constant-power panning by the source's azimuth as seen from the listener.

    Azimuth 0 is straight ahead of the listener (yaw 0 faces +y), +90° to the right;
    ``pan = sin(azimuth)``, so a source behind is placed like its mirror image in front
    (stereo has no front/back). Rooms and binaural modes do not apply.
    """

    def __init__(self, listeners: int, sources: int, centered: tuple[int, ...] = ()) -> None:
        self._centered = list(centered)
        self._pan_left = np.ones((listeners, sources), dtype=np.float32)
        self._pan_right = np.ones((listeners, sources), dtype=np.float32)
        self._left = np.zeros((listeners, sources), dtype=np.float32)
        self._right = np.zeros((listeners, sources), dtype=np.float32)
        self.set_geometry(np.zeros((min(listeners, sources), 2), dtype=np.float32))

    def set_modes(self, binaural: B8, room: B8, distance: B8) -> None:
        """Stereo panning has no modes."""

    def set_room(self, room: Room | None) -> None:
        """Stereo panning has no room."""

    def set_geometry(self, positions: F32, orientations: F32 | None = None) -> None:
        """Recompute the pan matrices; called when someone moves, not every tick."""
        n = positions.shape[0]
        dx = positions[None, :, 0] - positions[:n, None, 0]
        dy = positions[None, :, 1] - positions[:n, None, 1]
        if orientations is not None:  # turn into each listener's frame (yaw, clockwise)
            yaw = np.radians(orientations[:n, 0:1].astype(np.float64))
            dx, dy = dx * np.cos(yaw) - dy * np.sin(yaw), dx * np.sin(yaw) + dy * np.cos(yaw)
        distance = np.hypot(dx, dy)
        with np.errstate(invalid="ignore", divide="ignore"):
            pan = np.where(distance > 1e-6, dx / np.maximum(distance, 1e-6), 0.0)
        theta = (pan + 1.0) * (math.pi / 4.0)
        self._pan_left.fill(math.sqrt(0.5))
        self._pan_right.fill(math.sqrt(0.5))
        self._pan_left[:n, :n] = np.cos(theta)
        self._pan_right[:n, :n] = np.sin(theta)
        # Sources with no place on the stage (the metronome click) sit in the middle.
        self._pan_left[:, self._centered] = math.sqrt(0.5)
        self._pan_right[:, self._centered] = math.sqrt(0.5)

    def pan_gains(self, listener: int, source: int) -> tuple[float, float]:
        """(left, right) constant-power gains for one pair (for tests and displays)."""
        return float(self._pan_left[listener, source]), float(self._pan_right[listener, source])

    def render(self, weights: F32, sources: F32, out_left: F32, out_right: F32) -> None:
        """Two matrix products: each listener's row of gains times every source frame."""
        np.multiply(weights, self._pan_left, out=self._left)
        np.multiply(weights, self._pan_right, out=self._right)
        np.matmul(self._left, sources, out=out_left)
        np.matmul(self._right, sources, out=out_right)
