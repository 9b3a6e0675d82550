"""Shared fixtures: a real node on a free loopback port, clients with fresh keys."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from eth_account import Account

from node.app import Node
from node.config import NodeConfig, load_config


def node_config(data_dir: Path, **overrides: object) -> NodeConfig:
    """A config for tests: free port, temporary data dir, no environment influence."""
    values: dict[str, object] = {
        "http": {"port": 0},
        "data_dir": str(data_dir),
        "chain": {"mode": "off"},  # tests that need the devnet ask for it
        "ai": {"enabled": False},  # tests of the AI ask for it
        "p2p": {"enabled": False},  # so do tests of the network
    }
    values.update(overrides)
    return load_config(None, values, environ={})


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with Node(node_config(tmp_path / "data")) as running:
        yield running


@pytest.fixture
def account_factory():  # type: ignore[no-untyped-def]
    return Account.create


def tone(freq_hz: float, seconds: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(48000 * seconds)) / 48000
    return (amplitude * np.sin(2 * math.pi * freq_hz * t)).astype(np.float32)


def band_rms(audio: np.ndarray, freq_hz: float, rate: int = 48000) -> float:
    """RMS of ``audio`` (1-D) in a narrow band around ``freq_hz`` (via the FFT)."""
    if audio.shape[0] == 0:
        return 0.0
    spectrum = np.fft.rfft(audio * np.hanning(audio.shape[0]))
    freqs = np.fft.rfftfreq(audio.shape[0], 1 / rate)
    band = (freqs > freq_hz - 20) & (freqs < freq_hz + 20)
    return float(np.sqrt(np.sum(np.abs(spectrum[band]) ** 2)) / audio.shape[0])
