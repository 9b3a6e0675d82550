"""Session recording: a stem per participant plus the stereo mix, as WAV files.

The mix thread copies each tick's frames into a bounded queue (drop-oldest would lose audio,
so the bound is generous and overflow is counted); a writer thread appends them to the
files. WAV headers are written with placeholder sizes and fixed on stop — or, after a
crash, by ``repair_wav`` at the next start — so a killed node loses no audio it had written.

Every stem lines up with the mix and has its length. The silence before a late joiner and
after a musician who left is a hole in a sparse file (a seek, and an ``ftruncate`` at the
end), never written zeros, and a stem's file is closed as soon as its musician leaves: a long
take with musicians coming and going costs neither an open file per visit nor, at minute 30,
170 MB of zeros for each newcomer (what bench/soak.py found).
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from node.session.mixer import SessionMixer

log = logging.getLogger(__name__)

HEADER_BYTES = 44
QUEUE_S = 30.0  # this much audio may wait for the disk before frames are dropped


def wav_header(channels: int, sample_rate: int, data_bytes: int) -> bytes:
    """A 16-bit PCM RIFF/WAVE header."""
    block = channels * 2
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        sample_rate,
        sample_rate * block,
        block,
        16,
        b"data",
        data_bytes,
    )


def repair_wav(path: Path) -> int:
    """Rewrite a WAV header's sizes from the file's length; returns the data bytes."""
    with path.open("r+b") as file:
        file.seek(22)
        channels, sample_rate = (int(v) for v in struct.unpack("<HI", file.read(6)))
        file.seek(0, 2)
        data: int = max(0, file.tell() - HEADER_BYTES)
        data -= data % (2 * channels)  # a torn last sample frame is not audio
        file.seek(0)
        file.write(wav_header(channels, sample_rate, data))
    return data


@dataclass
class _Stem:
    key: str
    path: Path
    file: BinaryIO


@dataclass(frozen=True)
class _Block:
    stems: list[tuple[str, npt.NDArray[np.int16]]]
    mix: npt.NDArray[np.int16]


_GAP = _Block([], np.zeros((0, 2), dtype=np.int16))
"""A skipped tick: silence on every stem and the mix."""


class Recorder:
    """Records one session until ``stop``; ``capture`` is the mixer's recording sink."""

    def __init__(self, directory: Path, sample_rate: int = 48000, frame_samples: int = 960) -> None:
        self.directory = directory
        self.sample_rate = sample_rate
        self.frame_samples = frame_samples
        directory.mkdir(parents=True, exist_ok=True)
        ticks = round(QUEUE_S * sample_rate / frame_samples)
        self._queue: queue.Queue[_Block | None] = queue.Queue(maxsize=ticks)
        self._stems: dict[str, _Stem] = {}
        """Open stems: the musicians in the session now."""
        self._left: dict[str, Path] = {}
        """Stems of musicians who left (closed; padded to the mix's length on stop)."""
        self._mix = (directory / "mix.wav").open("wb")
        self._mix.write(wav_header(2, sample_rate, 0))
        self.frames = 0
        self.dropped = 0
        """Frames lost because the disk fell 30 s behind (counted, never silently)."""
        self.gap_frames = 0
        """Frames written as silence because the mix clock skipped them."""
        self._thread = threading.Thread(target=self._write, name="jamnet-recorder", daemon=True)
        self._thread.start()

    def stem_name(self, key: str) -> str:
        """File name of a participant's stem."""
        return f"stem-{key}.wav"

    def gap(self, frames: int) -> None:
        """The clock skipped ``frames`` ticks: they are written as silence, so the recording
        keeps the session's timeline and its stems stay aligned (called on the mix thread)."""
        for _ in range(frames):
            try:
                self._queue.put_nowait(_GAP)
            except queue.Full:
                self.dropped += 1

    def capture(self, mixer: SessionMixer) -> None:
        """Called on the mix thread after each tick: copy this tick's frames."""
        stems = [
            (slot.key, (mixer.sources[index] * 32767.0).astype(np.int16))
            for index, slot in enumerate(mixer.slots)
            if slot is not None
        ]
        block = _Block(stems, mixer.out_pcm[mixer.capacity].copy())
        try:
            self._queue.put_nowait(block)
        except queue.Full:
            self.dropped += 1

    def _write(self) -> None:
        while True:
            block = self._queue.get()
            if block is None:
                return
            try:
                if block is _GAP:
                    self._write_gap()
                    continue
                for key, samples in block.stems:
                    stem = self._stems.get(key)
                    if stem is None:
                        stem = self._open_stem(key)
                    stem.file.write(samples.tobytes())
                if len(block.stems) != len(self._stems):
                    self._close_departed({key for key, _ in block.stems})
                self._mix.write(block.mix.tobytes())
                self.frames += 1
            except OSError:
                log.exception("recording write failed in %s", self.directory)

    def _write_gap(self) -> None:
        silence = bytes(2 * self.frame_samples)
        for stem in self._stems.values():
            stem.file.write(silence)
        self._mix.write(silence * 2)
        self.frames += 1
        self.gap_frames += 1

    def _open_stem(self, key: str) -> _Stem:
        path = self.directory / self.stem_name(key)
        if self._left.pop(key, None) is not None:
            file: BinaryIO = path.open("r+b")  # the same slot key again: its own file
        else:
            file = path.open("wb")
            file.write(wav_header(1, self.sample_rate, 0))
        # Someone who joins late starts with silence, so every stem lines up with the mix:
        # a hole up to this frame (sparse), not zeros written out.
        file.seek(self._stem_bytes())
        stem = _Stem(key, path, file)
        self._stems[key] = stem
        return stem

    def _stem_bytes(self) -> int:
        """Where a stem's next frame goes: its header, then this many frames of 16-bit mono."""
        return HEADER_BYTES + 2 * self.frames * self.frame_samples

    def _close_departed(self, present: set[str]) -> None:
        for key in [k for k in self._stems if k not in present]:
            stem = self._stems.pop(key)
            stem.file.close()
            self._left[key] = stem.path

    def flush(self) -> None:
        """Push written audio to the OS so a crash keeps it."""
        for stem in list(self._stems.values()):
            stem.file.flush()
        self._mix.flush()

    def stop(self) -> int:
        """Finish writing, fix the headers, close the files; returns frames written."""
        self._queue.put(None)
        self._thread.join(timeout=30)
        paths = [*self._left.values()]
        for stem in self._stems.values():
            stem.file.close()
            paths.append(stem.path)
        self._stems.clear()
        length = self._stem_bytes()
        for path in paths:
            pad_to(path, length)  # those who left: silence to the end (sparse)
            repair_wav(path)
        self._mix.close()
        repair_wav(self.directory / "mix.wav")
        return self.frames


def pad_to(path: Path, length: int) -> None:
    """Extend ``path`` with zeros up to ``length`` bytes (a sparse hole; never shortens)."""
    with path.open("r+b") as file:
        if file.seek(0, 2) < length:
            file.truncate(length)


def recover(directory: Path, frame_samples: int = 960) -> int:
    """Repair every WAV header of an interrupted recording (stems padded to the mix's
    length, as ``stop`` does); returns mix frames recovered."""
    mix = directory / "mix.wav"
    frames = repair_wav(mix) // 4 // frame_samples if mix.exists() else 0
    for path in sorted(directory.glob("stem-*.wav")):
        if frames:
            pad_to(path, HEADER_BYTES + 2 * frames * frame_samples)
        repair_wav(path)
    return frames
