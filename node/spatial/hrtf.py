"""Direction lookup in a measured HRTF set: barycentric interpolation on the sphere.

The measured directions are triangulated once (their convex hull is the spherical Delaunay
triangulation). A query direction lies in exactly one triangle's cone; its three barycentric
weights (normalised to sum to 1) blend the three measured responses, so a source moving
between measurement points changes its filter continuously — no jumps.

Sets that do not cover a pole (MIT KEMAR stops at -40° elevation) get a virtual direction
there whose response is the mean of the nearest measured ring. When the directions are
mirror-symmetric (left/right), lookups of the left half are mirrored from the right half so
the interpolation itself is exactly symmetric, whatever diagonal the triangulation chose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import ConvexHull, QhullError, cKDTree

from node.errors import SpatialError
from node.spatial.sofa import HrtfSet

POLE_GAP = np.sin(np.radians(89.0))
"""A set 'covers' a pole when some direction is within 1° of it."""
INSIDE_TOLERANCE = -1e-9


@dataclass(frozen=True)
class Blend:
    """Three measured directions and their weights for each query (rows)."""

    index: npt.NDArray[np.intp]
    """(Q, 3) indices into ``DirectionLookup.hrirs``."""
    weight: npt.NDArray[np.float64]
    """(Q, 3) non-negative weights summing to 1."""


def _add_poles(
    directions: npt.NDArray[np.float64], hrirs: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32]]:
    extra_dirs: list[npt.NDArray[np.float64]] = []
    extra_irs: list[npt.NDArray[np.float32]] = []
    up = directions[:, 2]
    for sign in (1.0, -1.0):
        if np.any(sign * up > POLE_GAP):
            continue
        extreme = np.max(sign * up)
        ring = sign * up > extreme - 1e-3
        extra_dirs.append(np.array([[0.0, 0.0, sign]]))
        extra_irs.append(hrirs[ring].mean(axis=0, keepdims=True))
    if not extra_dirs:
        return directions, hrirs
    return (
        np.concatenate([directions, *extra_dirs]),
        np.concatenate([hrirs, *extra_irs]).astype(np.float32),
    )


class DirectionLookup:
    """Triangulated measurement directions with barycentric interpolation."""

    def __init__(self, hrtf: HrtfSet) -> None:
        self.hrtf = hrtf
        directions, self.hrirs = _add_poles(hrtf.directions, hrtf.hrirs)
        self.directions = directions
        try:
            hull = ConvexHull(directions)
        except (QhullError, ValueError) as exc:
            raise SpatialError(f"HRTF directions cannot be triangulated: {exc}") from None
        self.triangles = np.asarray(hull.simplices, dtype=np.intp)
        matrices = np.transpose(directions[self.triangles], (0, 2, 1))  # columns = vertices
        if np.any(np.abs(np.linalg.det(matrices)) < 1e-12):
            raise SpatialError(
                "HRTF directions cannot be triangulated: a degenerate triangle"
                " (duplicate directions, or too few to surround the head)"
            )
        self._inverse = np.linalg.inv(matrices)
        self._tree = cKDTree(directions)
        count = directions.shape[0]
        incident: list[list[int]] = [[] for _ in range(count)]
        for t, tri in enumerate(self.triangles):
            for v in tri:
                incident[int(v)].append(t)
        width = max(len(row) for row in incident)
        self._incident = np.full((count, width), -1, dtype=np.intp)
        for v, row in enumerate(incident):
            self._incident[v, : len(row)] = row
        mirrored = directions * np.array([-1.0, 1.0, 1.0])
        distance, mirror = self._tree.query(mirrored)
        self.symmetric = bool(np.all(distance < 1e-6))
        self._mirror = np.asarray(mirror, dtype=np.intp) if self.symmetric else np.arange(count)

    def blend(self, vectors: npt.ArrayLike) -> Blend:
        """Barycentric blend for each direction (rows of (Q, 3); any non-zero length)."""
        q = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        if q.ndim != 2 or q.shape[1] != 3 or not np.isfinite(q).all():
            raise SpatialError("directions must be finite (x, y, z) rows")
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        if np.any(norms < 1e-12):
            raise SpatialError("a direction has zero length")
        q = q / norms
        flip = q[:, 0] < 0 if self.symmetric else np.zeros(q.shape[0], dtype=bool)
        q = np.where(flip[:, None], q * np.array([-1.0, 1.0, 1.0]), q)
        triangle = self._locate(q)
        weight = np.einsum("qij,qj->qi", self._inverse[triangle], q)
        weight = np.clip(weight, 0.0, None)
        weight /= weight.sum(axis=1, keepdims=True)
        index = self.triangles[triangle]
        index = np.where(flip[:, None], self._mirror[index], index)
        return Blend(index=index, weight=weight)

    def _locate(self, q: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        _, nearest = self._tree.query(q)
        candidates = self._incident[nearest]  # (Q, width), -1 padded
        safe = np.where(candidates < 0, 0, candidates)
        w = np.einsum("qcij,qj->qci", self._inverse[safe], q)
        inside = (w.min(axis=2) >= INSIDE_TOLERANCE) & (candidates >= 0)
        found = inside.any(axis=1)
        triangle = safe[np.arange(q.shape[0]), inside.argmax(axis=1)]
        if not found.all():  # the nearest vertex is not always a corner of the triangle
            rest = np.flatnonzero(~found)
            w_all = np.einsum("tij,qj->qti", self._inverse, q[rest])
            triangle[rest] = np.argmax(w_all.min(axis=2), axis=1)
        return np.asarray(triangle, dtype=np.intp)

    def hrir(self, vectors: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Interpolated (Q, 2, taps) impulse responses (for tests, plots and the demo)."""
        b = self.blend(vectors)
        mixed = np.einsum("qj,qjet->qet", b.weight, self.hrirs[b.index])
        return np.asarray(mixed, dtype=np.float32)


def orient(
    vectors: npt.NDArray[np.float64], yaw_deg: npt.ArrayLike, pitch_deg: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """World vectors (x right, y front, z up) → the head frame of listeners facing yaw/pitch.

    Yaw turns clockwise seen from above (+90° faces +x); pitch tilts the face up.
    ``vectors`` is (..., 3); yaw and pitch broadcast against its leading dimensions.
    """
    yaw = np.radians(np.asarray(yaw_deg, dtype=np.float64))[..., None]
    pitch = np.radians(np.asarray(pitch_deg, dtype=np.float64))[..., None]
    sy, cy, sp, cp = np.sin(yaw), np.cos(yaw), np.sin(pitch), np.cos(pitch)
    x, y, z = vectors[..., 0:1], vectors[..., 1:2], vectors[..., 2:3]
    right = x * cy - y * sy
    level_front = x * sy + y * cy
    front = level_front * cp + z * sp
    up = z * cp - level_front * sp
    return np.concatenate([right, front, up], axis=-1)


def azimuth_elevation(
    vectors: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Head-frame vectors → (azimuth clockwise from the front, elevation) in degrees."""
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    return np.degrees(np.arctan2(x, y)), np.degrees(np.arctan2(z, np.hypot(x, y)))
