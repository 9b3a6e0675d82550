"""A shoebox room: first-order image sources and the late reverb's parameters.

The room is centred on the stage: x in ±width/2, y in ±depth/2, floor at z = 0; every head
is at ``HEAD_HEIGHT_M`` (or mid-height in a low room). Positions outside the room are taken
at the nearest point inside it.

Early reflections: each of the six walls mirrors the source; the image's extra path length
over the direct sound gives its delay, its distance the inverse-distance gain, the wall's
absorption α a factor √(1-α), and the HRTF set the image direction's arrival time and
broadband gain at each ear. Late reverb: a feedback delay network whose decay time comes
from Sabine's formula, RT60 = 0.161·V / (α·A).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from node.errors import SpatialError
from node.inputs import number

SPEED_OF_SOUND_M_S = 343.0
HEAD_HEIGHT_M = 1.5
WALL_MARGIN_M = 0.05
MIN_SIDE_M, MAX_SIDE_M = 2.0, 50.0
FDN_LINES = 8
FDN_BASE_MS = (29.7, 37.1, 41.1, 43.7, 47.9, 53.3, 59.9, 67.7)
"""Delay-line lengths for a 10 m room, mutually prime once in samples; they scale with size."""
MIN_RT60_S, MAX_RT60_S = 0.1, 4.0


@dataclass(frozen=True)
class Room:
    """A session's room: inner dimensions in metres and one broadband wall absorption."""

    width_m: float
    depth_m: float
    height_m: float
    absorption: float
    """Fraction of energy a wall absorbs per reflection, 0.05 (stone) .. 1 (open air)."""

    @classmethod
    def parse(cls, body: Any) -> Room:
        """Validate ``{"width_m", "depth_m", "height_m", "absorption"}``."""
        if not isinstance(body, dict):
            raise SpatialError("room must be an object with width_m, depth_m, height_m, absorption")
        unknown = sorted(set(body) - {"width_m", "depth_m", "height_m", "absorption"})
        if unknown:
            raise SpatialError(f"unknown room field {unknown[0]!r}")
        values: dict[str, float] = {}
        for key, lo, hi, default in (
            ("width_m", MIN_SIDE_M, MAX_SIDE_M, None),
            ("depth_m", MIN_SIDE_M, MAX_SIDE_M, None),
            ("height_m", MIN_SIDE_M, 20.0, 3.0),
            ("absorption", 0.05, 1.0, 0.3),
        ):
            values[key] = number(body.get(key, default), f"room.{key}", lo, hi, SpatialError)
        return cls(**values)

    def settings(self) -> dict[str, float]:
        """What ``parse`` reads back (stored with the session)."""
        return {
            "width_m": self.width_m,
            "depth_m": self.depth_m,
            "height_m": self.height_m,
            "absorption": self.absorption,
        }

    def public(self) -> dict[str, float]:
        """JSON form for the API: the settings and the resulting reverberation time."""
        return {**self.settings(), "rt60_s": round(self.rt60_s, 3)}

    @property
    def head_height_m(self) -> float:
        """Ear height above the floor."""
        return min(HEAD_HEIGHT_M, self.height_m / 2)

    @property
    def rt60_s(self) -> float:
        """Sabine reverberation time, clamped to a range the reverb renders well."""
        w, d, h = self.width_m, self.depth_m, self.height_m
        area = 2 * (w * d + w * h + d * h)
        rt60 = 0.161 * w * d * h / (self.absorption * area)
        return min(MAX_RT60_S, max(MIN_RT60_S, rt60))

    def max_delay_s(self) -> float:
        """Longest first-order reflection delay beyond the direct sound (for buffer sizes)."""
        return 2 * max(self.width_m, self.depth_m, self.height_m) / SPEED_OF_SOUND_M_S

    def place(self, positions: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Stage (x, y) rows → 3-D points inside the room at head height."""
        points = np.empty((positions.shape[0], 3))
        half_w = self.width_m / 2 - WALL_MARGIN_M
        half_d = self.depth_m / 2 - WALL_MARGIN_M
        points[:, 0] = np.clip(positions[:, 0], -half_w, half_w)
        points[:, 1] = np.clip(positions[:, 1], -half_d, half_d)
        points[:, 2] = self.head_height_m
        return points

    def images(self, sources: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """(S, 3) source points → (S, 6, 3) first-order image sources (±x, ±y, floor, ceiling)."""
        w, d, h = self.width_m / 2, self.depth_m / 2, self.height_m
        result = np.repeat(sources[:, None, :], 6, axis=1)
        result[:, 0, 0] = 2 * w - sources[:, 0]
        result[:, 1, 0] = -2 * w - sources[:, 0]
        result[:, 2, 1] = 2 * d - sources[:, 1]
        result[:, 3, 1] = -2 * d - sources[:, 1]
        result[:, 4, 2] = -sources[:, 2]
        result[:, 5, 2] = 2 * h - sources[:, 2]
        return result

    def reverb_design(
        self, sample_rate: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], float]:
        """Delay-line lengths (samples), per-pass gains and damping for the late reverb."""
        size = (self.width_m * self.depth_m * self.height_m / 300.0) ** (1 / 3)  # 10x10x3 → 1
        scale = min(2.0, max(0.6, size))
        lengths = np.array(
            [_next_prime(int(ms * scale * sample_rate / 1000)) for ms in FDN_BASE_MS]
        )
        rt60 = self.rt60_s
        gains = (10.0 ** (-3.0 * lengths / (rt60 * sample_rate))).astype(np.float32)
        damping = 0.15 + 0.5 * self.absorption  # absorbent rooms lose their highs faster
        return lengths.astype(np.int64), gains, damping


def _next_prime(n: int) -> int:
    def prime(k: int) -> bool:
        return k > 1 and all(k % p for p in range(2, math.isqrt(k) + 1))

    while not prime(n):
        n += 1
    return n
