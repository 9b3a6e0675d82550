"""Session recording: a stem per participant plus the stereo mix, as WAV files.

The mix thread copies each tick's frames into a bounded queue (drop-oldest would lose audio,
so the bound is generous and overflow is counted); a writer thread appends them to the
files. WAV headers are written with placeholder sizes and fixed on stop — or, after a
crash, by ``repair_wav`` at the next start — so a killed node loses no audio it had written.
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
        file = path.open("wb")
        file.write(wav_header(1, self.sample_rate, 0))
        # Someone who joins late starts with silence, so every stem lines up with the mix.
        file.write(bytes(2 * self.frames * self.frame_samples))
        stem = _Stem(key, path, file)
        self._stems[key] = stem
        return stem

    def flush(self) -> None:
        """Push written audio to the OS so a crash keeps it."""
        for stem in list(self._stems.values()):
            stem.file.flush()
        self._mix.flush()

    def stop(self) -> int:
        """Finish writing, fix the headers, close the files; returns frames written."""
        self._queue.put(None)
        self._thread.join(timeout=30)
        for stem in self._stems.values():
            stem.file.close()
            repair_wav(stem.path)
        self._mix.close()
        repair_wav(self.directory / "mix.wav")
        return self.frames


def recover(directory: Path, frame_samples: int = 960) -> int:
    """Repair every WAV header of an interrupted recording; returns mix frames recovered."""
    frames = 0
    for path in sorted(directory.glob("*.wav")):
        data = repair_wav(path)
        if path.name == "mix.wav":
            frames = data // 4 // frame_samples
    return frames
