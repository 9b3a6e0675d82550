"""Binaural personal mixes: every source placed around every listener with measured HRTFs.

Per tick (B = 960 samples), for S sources and L listeners:
1. each source's input window is transformed ONCE (rfft of N = B + M points per partition
   window) into the frequency-domain delay line X (K bins × P·S);
2. one batched complex matrix-vector product per bin, Y[k] = H[k] · X[k], where H[k] is the
   (2L × P·S) matrix of every listener-ear/source-partition filter — the listener-source
   multiply-accumulate of all pairs at once, in BLAS;
3. one inverse FFT per listener ear; the last B samples are the block (overlap-save).

H only changes when someone moves, turns or changes a gain. Then only the changed pairs are
recomputed — barycentric blend of three cached direction spectra times the distance gain —
and the block crossfades from the old filter to the new one: with d = IFFT((H_old - H_new)·X),
the output y_new + (1 - ramp)·d equals (1 - ramp)·y_old + ramp·y_new exactly, so motion
makes no clicks, and the extra cost is paid only by listeners whose filters changed.

Listeners with binaural off get constant-power stereo panning through the same product
(a flat filter); sources with no place (the metronome click) and a listener's own voice are
heard in the middle of the head. With a room, early reflections and a late reverb are added
in the time domain (node/spatial/kernels.py).

All buffers are allocated in ``__init__`` or when the room changes; ``render`` allocates
nothing on ticks where nobody moved.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import signal

from node.errors import SpatialError
from node.spatial import kernels
from node.spatial.bank import HrtfBank
from node.spatial.fft import irfft_into, rfft_into
from node.spatial.hrtf import orient
from node.spatial.room import SPEED_OF_SOUND_M_S, Room

F32 = npt.NDArray[np.float32]
SAME_PLACE_M = 1e-3
"""Closer than this, a source has no direction: it is heard in the middle of the head."""
REVERB_LEVEL = 0.35
"""Late reverb energy relative to the dry sound of a source at the near distance."""
HISTORY_SPARE_BLOCKS = 16
"""The source history is shifted back once every this many ticks (amortised copy)."""
_FLAT = math.sqrt(0.5)


def distance_gain(
    distance: npt.NDArray[np.float64], near_m: float, far_m: float
) -> npt.NDArray[np.float64]:
    """Inverse-distance law: 1 up to ``near_m``, near/d beyond, constant past ``far_m``."""
    return near_m / np.clip(distance, near_m, far_m)


def constant_power(pan: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Pan position -1 (left) .. 1 (right) → (..., 2) constant-power ear gains."""
    theta = (pan + 1.0) * (math.pi / 4)
    return np.stack([np.cos(theta), np.sin(theta)], axis=-1)


class BinauralRenderer:
    """Implements ``node.session.render.Renderer`` with HRTFs, distance and a room."""

    def __init__(
        self,
        bank: HrtfBank,
        listeners: int,
        sources: int,
        centered: tuple[int, ...] = (),
        near_m: float = 2.0,
        far_m: float = 40.0,
        sample_rate: int = 48000,
    ) -> None:
        self.bank = bank
        self.listeners, self.sources = listeners, sources
        self.near_m, self.far_m = near_m, far_m
        self.sample_rate = sample_rate
        self._centered = np.zeros(sources, dtype=bool)
        self._centered[list(centered)] = True
        b, n, k, p = bank.block, bank.fft_size, bank.bins, bank.partitions
        self._block, self._n = b, n
        self._fresh = min(p, b // bank.partition)  # partition windows computed each tick
        self._history_need = n + (self._fresh - 1) * bank.partition
        self._history = np.zeros((sources, 0), dtype=np.float32)
        self._half = np.zeros((sources, 0), dtype=np.float32)
        """The sources' history at half the sample rate (for early reflections)."""
        self._end = 0
        self._allocate_history(self._history_need)
        self._x = np.zeros((k, p * sources), dtype=np.complex64)
        self._h_real = np.zeros((k, 2 * listeners, p * sources), dtype=np.float32)
        self._h_imag = np.zeros((k, 2 * listeners, p * sources), dtype=np.float32)
        self._y = np.zeros((k, 2 * listeners), dtype=np.complex64)
        self._mac_scratch = np.zeros((2, p * sources), dtype=np.float32)
        self._fdn_scratch = np.zeros((8, listeners), dtype=np.float32)
        self._unequal = np.zeros((listeners, sources), dtype=bool)
        # Which rows (listener ears) and source columns hold any filter: empty slots are skipped.
        self._row_end = 0
        self._extra_rows = np.zeros(0, dtype=np.int64)
        self._col_end = 0
        self._extra_cols = np.zeros(0, dtype=np.int64)
        self._y_time = np.zeros((2 * listeners, n), dtype=np.float32)
        self._delta = np.zeros((k, 2 * listeners), dtype=np.complex64)
        self._delta_time = np.zeros((2 * listeners, n), dtype=np.float32)
        self._fade: F32 = (1.0 - np.arange(1, b + 1) / b).astype(np.float32)
        self._ramp: F32 = (np.arange(1, b + 1) / b).astype(np.float32)
        # Geometry and what H currently holds, per pair.
        self._positions = np.zeros((max(listeners, sources), 2), dtype=np.float32)
        self._orientations = np.zeros((listeners, 2), dtype=np.float32)
        self._binaural = np.ones(listeners, dtype=bool)
        self._room_on = np.zeros(listeners, dtype=bool)
        self._distance = np.ones(listeners, dtype=bool)
        self._room: Room | None = None
        self._dirty = True
        self._weights = np.zeros((listeners, sources), dtype=np.float32)
        self._key = np.full((listeners, sources, 6), np.nan)
        # Room state: early reflections per (listener, source, wall) into one bus per
        # (listener, wall), heard by each ear from the wall's direction.
        walls = 6
        self._refl_delay = np.zeros((listeners, sources, walls), dtype=np.int32)
        self._refl_gain = np.zeros((listeners, sources, walls), dtype=np.float32)
        self._ear_delay = np.zeros((listeners, walls, 2), dtype=np.int32)
        self._ear_gain = np.zeros((listeners, walls, 2), dtype=np.float32)
        self._old = (
            self._refl_delay.copy(),
            self._refl_gain.copy(),
            self._ear_delay.copy(),
            self._ear_gain.copy(),
        )
        self._tap_fading = np.zeros(listeners, dtype=np.bool_)
        self._only = np.zeros(listeners, dtype=np.bool_)
        pad = int(np.ceil(bank.onsets.max())) + 2
        self._pad = pad + pad % 2  # even: the reflections run at half the sample rate
        self._bus = np.zeros(walls * ((self._pad + b) // 2 + 1), dtype=np.float32)
        self._upsampled = np.zeros(self._pad + b, dtype=np.float32)
        decimator = signal.firwin(11, 0.5)
        decimator[np.abs(decimator) < 1e-9] = 0.0  # half-band: every other tap is zero
        self._decimator = decimator.astype(np.float32)
        self._ones = np.ones(b, dtype=np.float32)
        self._send_weights = np.zeros((sources, listeners), dtype=np.float32)
        # The late reverb also runs at half the sample rate (it is dark anyway).
        self._send = np.zeros((b // 2, listeners), dtype=np.float32)
        self._late = np.zeros((2, b // 2, listeners), dtype=np.float32)
        self._late_last = np.zeros((2, listeners), dtype=np.float32)
        self._fdn: (
            tuple[F32, npt.NDArray[np.int64], npt.NDArray[np.int64], F32, float, F32] | None
        ) = None
        self._fdn_taps = (
            np.full(8, 1.0 / math.sqrt(8), dtype=np.float32),
            np.array([1, -1, 1, -1, -1, 1, -1, 1], dtype=np.float32) / np.float32(math.sqrt(8)),
        )
        self._wet = 0.0

    # ------------------------------------------------------------ configuration
    def set_geometry(self, positions: F32, orientations: F32 | None = None) -> None:
        """Stage positions (rows x, y in metres) and listener (yaw, pitch) in degrees."""
        rows = min(positions.shape[0], self._positions.shape[0])
        if not np.isfinite(positions).all() or (
            orientations is not None and not np.isfinite(orientations).all()
        ):
            raise SpatialError("positions and orientations must be finite")
        self._positions[:rows] = positions[:rows]
        if orientations is not None:
            count = min(orientations.shape[0], self.listeners)
            self._orientations[:count] = orientations[:count]
        self._dirty = True

    def set_modes(
        self,
        binaural: npt.NDArray[np.bool_],
        room: npt.NDArray[np.bool_],
        distance: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        """Per listener: binaural (else stereo panning), room, and the distance law, on/off."""
        self._binaural[:] = binaural[: self.listeners]
        self._room_on[:] = room[: self.listeners]
        if distance is not None:
            self._distance[:] = distance[: self.listeners]
        self._dirty = True

    def set_room(self, room: Room | None) -> None:
        """A shoebox room for the whole session, or None for a dry, free-field stage."""
        self._room = room
        if room is not None:
            max_delay = room.max_delay_s() * self.sample_rate
            need = max(self._history_need, self._block + self._pad + math.ceil(max_delay) + 16)
            need += need % 2
            if need > self._history_need or self._history.shape[1] < need + self._block:
                self._allocate_history(need)
            # Bring the half-rate history up to date with everything kept so far.
            whole = self._end - 12 - self._end % 2
            kernels.decimate(self._history, self._end, whole, self._decimator, self._half)
            lengths, gains, damping = room.reverb_design(self.sample_rate // 2)
            lines = np.zeros((8, int(lengths.max()), self.listeners), dtype=np.float32)
            state = np.zeros((8, self.listeners), dtype=np.float32)
            self._fdn = (lines, lengths, np.zeros(8, dtype=np.int64), gains, damping, state)
            mean_gain = float(np.mean(gains.astype(np.float64) ** 2))
            self._wet = REVERB_LEVEL * math.sqrt((1 - mean_gain) * (1 - room.absorption / 2))
        else:
            self._fdn = None
        self._key.fill(np.nan)  # every pair's filter and taps are rebuilt at the next tick
        self._dirty = True

    def _allocate_history(self, need: int) -> None:
        old = self._history
        keep = min(need, self._end)
        history = np.zeros(
            (self.sources, need + HISTORY_SPARE_BLOCKS * self._block), dtype=np.float32
        )
        if keep:
            history[:, need - keep : need] = old[:, self._end - keep : self._end]
        half = np.zeros((self.sources, history.shape[1] // 2 + 1), dtype=np.float32)
        if keep and self._half.shape[1]:
            half[:, (need - keep) // 2 : need // 2] = self._half[
                :, (self._end - keep) // 2 : self._end // 2
            ]
        self._history, self._history_need, self._end = history, need, need
        self._spare_history = np.zeros_like(history)
        self._half, self._spare_half = half, np.zeros_like(half)

    # ------------------------------------------------------------------ the tick
    def render(self, weights: F32, sources: F32, out_left: F32, out_right: F32) -> None:
        """Every listener's binaural block for this tick's source blocks."""
        b, n, m, s_count = self._block, self._n, self.bank.partition, self.sources
        if self._end + b > self._history.shape[1]:  # wrap: the last ``need`` samples move
            need = self._history_need  # to the front of the spare buffer (no temporary)
            self._spare_history[:, :need] = self._history[:, self._end - need : self._end]
            self._history, self._spare_history = self._spare_history, self._history
            self._spare_half[:, : need // 2] = self._half[
                :, (self._end - need) // 2 : self._end // 2
            ]
            self._half, self._spare_half = self._spare_half, self._half
            self._end = need
        self._history[:, self._end : self._end + b] = sources
        self._end += b
        if self._room is not None:
            kernels.decimate(self._history, self._end, b, self._decimator, self._half)
        x = self._x
        if self.bank.partitions > self._fresh:  # older partitions: last tick's windows
            x[:, self._fresh * s_count :] = x[:, : -self._fresh * s_count].copy()
        for j in range(self._fresh):
            stop = self._end - j * m
            rfft_into(self._history[:, stop - n : stop], x[:, j * s_count : (j + 1) * s_count].T)
        fading = False
        np.not_equal(weights, self._weights, out=self._unequal)
        if self._dirty or self._unequal.any():
            fading = self._retarget(weights)
        kernels.multiply_accumulate(
            self._h_real, self._h_imag, x, self._y,
            self._row_end, self._extra_rows, self._col_end, self._extra_cols, self._mac_scratch,
        )  # fmt: skip
        irfft_into(self._y, self._y_time.T)
        tail = self._y_time[:, n - b :]
        if fading:
            irfft_into(self._delta, self._delta_time.T)
            tail += self._fade * self._delta_time[:, n - b :]
        np.copyto(out_left, tail[0::2])
        np.copyto(out_right, tail[1::2])
        if self._room is not None and self._room_on.any():
            self._render_room(sources, out_left, out_right)

    def _render_room(self, sources: F32, out_left: F32, out_right: F32) -> None:
        on, fading = self._room_on, self._tap_fading
        new = (self._refl_delay, self._refl_gain, self._ear_delay, self._ear_gain)
        np.logical_and(on, np.logical_not(fading, out=self._only), out=self._only)
        self._reflect(new, self._ones, out_left, out_right)
        if fading.any():
            np.logical_and(on, fading, out=self._only)
            self._reflect(new, self._ramp, out_left, out_right)
            self._reflect(self._old, self._fade, out_left, out_right)
            fading.fill(False)
        if self._fdn is None:
            return
        lines, lengths, positions, gains, damping, state = self._fdn
        newest = self._half[:, (self._end - self._block) // 2 : self._end // 2]
        np.matmul(newest.T, self._send_weights, out=self._send)
        # Listeners without the room send nothing and hear nothing of it.
        kernels.reverb(
            self._send, lines, lengths, positions, gains, damping, state,
            self._fdn_taps[0], self._fdn_taps[1], self._fdn_scratch, self._late, self._late_last,
            self._wet, on, out_left, out_right,
        )  # fmt: skip

    def _reflect(
        self,
        taps: tuple[npt.NDArray[np.int32], F32, npt.NDArray[np.int32], F32],
        envelope: F32,
        out_left: F32,
        out_right: F32,
    ) -> None:
        base = (self._end - self._block - self._pad + kernels.DECIMATION_DELAY) // 2
        kernels.reflect(
            self._half.reshape(-1), self._half.shape[1], base, taps[0], taps[1], taps[2],
            taps[3], self._only, envelope, self._bus, self._upsampled, out_left, out_right,
        )  # fmt: skip

    # ------------------------------------------------------- filter retargeting
    def _geometry(
        self,
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(listener points (L,3), source points (S,3), head-frame vectors (L,S,3))."""
        room = self._room
        rows = self._positions.astype(np.float64)
        if room is None:
            points = np.concatenate([rows, np.zeros((rows.shape[0], 1))], axis=1)
        else:
            points = room.place(self._positions)
        listeners, sources = points[: self.listeners], points[: self.sources]
        world = sources[None, :, :] - listeners[:, None, :]
        head = orient(world, self._orientations[:, 0:1], self._orientations[:, 1:2])
        return listeners, sources, head

    def _retarget(self, weights: F32) -> bool:
        """Recompute the filters of pairs whose geometry, gain or mode changed."""
        self._dirty = False
        listener_points, source_points, head = self._geometry()
        distance = np.linalg.norm(head, axis=2)
        law = distance_gain(distance, self.near_m, self.far_m)
        gain = weights.astype(np.float64) * np.where(self._distance[:, None], law, 1.0)
        flat = ~self._binaural[:, None] | self._centered[None, :] | (distance < SAME_PLACE_M)
        key = np.concatenate(
            [
                head,
                gain[..., None],
                flat[..., None].astype(np.float64),
                np.broadcast_to(self._room_on[:, None, None], (*gain.shape, 1)).astype(np.float64),
            ],
            axis=2,
        )
        changed = ~np.all(np.abs(key - self._key) <= 1e-7, axis=2)
        self._key = key
        self._weights[:] = weights
        pairs_l, pairs_s = np.nonzero(changed)
        if pairs_l.size == 0:
            return False
        self._update_filters(pairs_l, pairs_s, head, gain, flat)
        self._update_active(gain)
        self._update_room(pairs_l, pairs_s, listener_points, source_points, distance, weights)
        return True

    def _update_filters(
        self,
        pairs_l: npt.NDArray[np.intp],
        pairs_s: npt.NDArray[np.intp],
        head: npt.NDArray[np.float64],
        gain: npt.NDArray[np.float64],
        flat: npt.NDArray[np.bool_],
    ) -> None:
        bank, p_count, s_count = self.bank, self.bank.partitions, self.sources
        count = pairs_l.size
        new = np.zeros((count, 2, p_count, bank.bins), dtype=np.complex64)
        pair_gain = gain[pairs_l, pairs_s]
        is_flat = flat[pairs_l, pairs_s]
        audible = pair_gain > 0
        spatial = np.flatnonzero(~is_flat & audible)
        if spatial.size:
            blend = bank.lookup.blend(head[pairs_l[spatial], pairs_s[spatial]])
            mixed = np.einsum(
                "qj,qjepk->qepk", blend.weight.astype(np.float32), bank.spectra[blend.index]
            )
            new[spatial] = mixed * pair_gain[spatial, None, None, None].astype(np.float32)
        panned = np.flatnonzero(is_flat & audible)
        if panned.size:
            ears = self._flat_gains(pairs_l[panned], pairs_s[panned], head)
            new[panned, :, 0, :] = (ears * pair_gain[panned, None])[:, :, None]
        rows = (2 * pairs_l[:, None, None] + np.arange(2)[None, :, None]).repeat(p_count, axis=2)
        cols = (np.arange(p_count)[None, None, :] * s_count + pairs_s[:, None, None]).repeat(
            2, axis=1
        )
        rows, cols = rows.reshape(-1), cols.reshape(-1)
        new_cols = new.reshape(count * 2 * p_count, bank.bins).T
        old_cols = self._h_real[:, rows, cols] + 1j * self._h_imag[:, rows, cols]
        contribution = (old_cols - new_cols) * self._x[:, cols]
        self._delta.fill(0)
        np.add.at(self._delta.T, rows, contribution.T)
        self._h_real[:, rows, cols] = new_cols.real
        self._h_imag[:, rows, cols] = new_cols.imag

    def _update_active(self, gain: npt.NDArray[np.float64]) -> None:
        """Rows and columns the multiply-accumulate must visit (others are all zero).

        Slots fill from 0, so the audible listeners and sources are mostly a prefix; the
        rest (e.g. the recording row and click column at the end) are listed one by one.
        """

        def split(indices: npt.NDArray[np.intp]) -> tuple[int, npt.NDArray[np.int64]]:
            end = 0
            while end < indices.size and indices[end] == end:
                end += 1
            return end, indices[end:].astype(np.int64)

        audible = gain > 0
        listeners, self._extra_rows = split(np.flatnonzero(audible.any(axis=1)))
        self._row_end = 2 * listeners
        self._extra_rows = np.sort(
            np.concatenate([2 * self._extra_rows, 2 * self._extra_rows + 1])
        ).astype(np.int64)
        sources = np.flatnonzero(audible.any(axis=0))
        if self.bank.partitions > 1:  # later partitions' columns: visit them all
            self._col_end, self._extra_cols = self._x.shape[1], np.zeros(0, dtype=np.int64)
        else:
            self._col_end, self._extra_cols = split(sources)
        self._y.fill(0)  # rows no longer visited must read as silence

    def _flat_gains(
        self,
        listeners: npt.NDArray[np.intp],
        sources: npt.NDArray[np.intp],
        head: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        """(Q, 2) ear gains: constant-power pan by azimuth, or the middle of the head."""
        vectors = head[listeners, sources]
        length = np.linalg.norm(vectors, axis=1)
        middle = (length < SAME_PLACE_M) | self._centered[sources]
        pan = np.where(middle, 0.0, vectors[:, 0] / np.maximum(length, SAME_PLACE_M))
        ears = constant_power(pan)
        ears[middle] = _FLAT
        return ears

    def _update_room(
        self,
        pairs_l: npt.NDArray[np.intp],
        pairs_s: npt.NDArray[np.intp],
        listener_points: npt.NDArray[np.float64],
        source_points: npt.NDArray[np.float64],
        distance: npt.NDArray[np.float64],
        weights: F32,
    ) -> None:
        room = self._room
        active = (self._room_on[:, None] & ~self._centered[None, :]).astype(np.float32)
        np.copyto(self._send_weights, (weights * active).T)
        rows = np.unique(pairs_l)
        for old, new in zip(
            self._old,
            (self._refl_delay, self._refl_gain, self._ear_delay, self._ear_gain),
            strict=True,
        ):
            old[rows] = new[rows]
        self._tap_fading[rows] = True
        self._refl_gain[pairs_l, pairs_s] = 0.0
        if room is None:
            return
        use = np.flatnonzero(
            self._room_on[pairs_l] & ~self._centered[pairs_s] & (weights[pairs_l, pairs_s] > 0)
        )
        images = room.images(source_points)  # (S, 6, 3)
        if use.size:
            ls, ss = pairs_l[use], pairs_s[use]
            length = np.linalg.norm(images[ss] - listener_points[ls][:, None, :], axis=2)
            extra = (length - distance[ls, ss][:, None]) * (self.sample_rate / SPEED_OF_SOUND_M_S)
            # In half-rate samples; the newest half-rate samples lag by the decimator's delay,
            # so the shortest reflection is 3 (0.13 ms: one a wall's width behind a source).
            limit = (self._history_need - self._block - self._pad) // 2 - 1
            half = np.clip(np.rint(extra / 2), 3, limit)
            self._refl_delay[ls, ss] = half.astype(np.int32)
            self._refl_gain[ls, ss] = (
                math.sqrt(1.0 - room.absorption)
                * distance_gain(length, self.near_m, self.far_m)
                * weights[ls, ss][:, None]
            ).astype(np.float32)
        # Each wall's bus is heard from the level-weighted mean direction of its images.
        world = images[None, :, :, :] - listener_points[rows][:, None, None, :]  # (R, S, 6, 3)
        unit = world / np.maximum(np.linalg.norm(world, axis=3, keepdims=True), SAME_PLACE_M)
        mean = np.einsum("rsw,rswc->rwc", self._refl_gain[rows].astype(np.float64), unit)
        mirror = room.images(listener_points[rows]) - listener_points[rows][:, None, :]
        weak = np.linalg.norm(mean, axis=2) < 1e-9
        mean[weak] = mirror[weak]
        head = orient(mean, self._orientations[rows, 0:1], self._orientations[rows, 1:2])
        length = np.maximum(np.linalg.norm(head, axis=2), 1e-9)
        blend = self.bank.lookup.blend(head.reshape(-1, 3))
        nearest = blend.index[np.arange(blend.index.shape[0]), np.argmax(blend.weight, axis=1)]
        onset = self.bank.onsets[nearest].reshape(*head.shape[:2], 2)
        ear_gain = self.bank.ear_gains[nearest].reshape(*head.shape[:2], 2)
        panned = constant_power(head[..., 0] / length)
        binaural = self._binaural[rows][:, None, None]
        self._ear_gain[rows] = np.where(binaural, ear_gain, panned)
        self._ear_delay[rows] = np.where(binaural, np.rint(onset), 0).astype(np.int32)
