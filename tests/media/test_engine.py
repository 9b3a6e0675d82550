"""The mix clock: ticks at every frame size, and a clock that falls behind moves time on."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time

import pytest

from node.media.codec import EncodedPacket, OpusEncoder, OpusFrameDecoder
from node.media.engine import Listener, MixClocks, SessionMedia
from node.session.mixer import SessionMixer


class Recorded:
    """Stands where a listener's track stands: keeps each packet with its delivery time."""

    def __init__(self) -> None:
        self.packets: list[tuple[int, float]] = []

    def offer(self, packet: EncodedPacket) -> None:
        self.packets.append((packet.pts or 0, time.monotonic()))

    def stop(self) -> None:
        """Nothing to stop."""


async def wait_for(predicate, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("frame_ms", [5, 10, 20])
async def test_a_stalled_clock_skips_ahead_and_the_timestamps_follow_the_wall_clock(
    frame_ms: int,
) -> None:
    """The clock is stalled for 300 ms mid-jam (as a busy machine would): it skips the ticks
    it missed, and the listener's RTP timestamps jump by them, so a receiver sees a gap of
    the right length (to conceal), not late packets that would hold its delay up for good."""
    loop = asyncio.get_running_loop()
    frame = 48 * frame_ms
    clocks = MixClocks(loop)
    mixer = SessionMixer(2, frame_samples=frame)
    mixer.allocate("a", OpusFrameDecoder(frame))
    media = SessionMedia(mixer)
    track = Recorded()
    media.listeners[0] = Listener(track, OpusEncoder(2, 128000, 5, frame_ms))  # type: ignore[arg-type]
    clocks.add("s", media, frame_ms)
    clock = clocks.clock(frame_ms)
    stalled = []
    ticked: list[float] = []

    def stall_once(_elapsed: float) -> None:
        ticked.append(time.monotonic())  # on the clock's own thread, right after each tick
        if clock.stats.ticks == 40 and not stalled:
            stalled.append(True)
            time.sleep(0.3)

    clocks.tick_observers.append(stall_once)
    clocks.start()
    try:
        await wait_for(lambda: len(track.packets) > 120 and stalled)
    finally:
        clocks.stop()
    assert clock.stats.skipped >= 0.3 / (frame_ms / 1000) - 3, clock.stats
    pts = [p for p, _ in track.packets]
    steps = [(b - a) // frame for a, b in itertools.pairwise(pts)]
    assert all(step >= 1 for step in steps), "timestamps only move forward"
    assert max(steps) >= 0.2 / (frame_ms / 1000), "the stall shows as one gap in the timestamps"
    # Media time tracks the wall clock: the timestamps span what the ticks that made them
    # span (within the skip threshold of slack), instead of falling 300 ms behind it.
    # (Every tick made one packet: packet k came from tick k.)
    span_media = (pts[-1] - pts[0]) / 48000
    span_wall = ticked[len(pts) - 1] - ticked[0]
    assert abs(span_media - span_wall) < 0.1, (span_media, span_wall)
    assert mixer.skipped == clock.stats.skipped
    assert clocks.stats.spells >= 1, "the spell was counted (and logged) once it ended"


async def test_a_tick_late_after_a_stall_lets_the_loop_read_the_sockets_first() -> None:
    """The process is stalled (the hypervisor took its core) while a packet reaches its
    socket: the tick that catches up mixes only after the event loop has read it, instead
    of concealing a frame that is already on this machine."""
    loop = asyncio.get_running_loop()
    frame_ms, frame = 20, 960
    clocks = MixClocks(loop)
    mixer = SessionMixer(2, frame_samples=frame)
    mixer.allocate("a", OpusFrameDecoder(frame))
    clocks.add("s", SessionMedia(mixer), frame_ms)
    clock = clocks.clock(frame_ms)
    clock.drain_wait_s = 30.0  # however slow this machine: the order is what is tested
    read_at: list[int] = []

    class Inbox(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
            read_at.append(clock.stats.ticks)

    transport, _ = await loop.create_datagram_endpoint(Inbox, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent: list[int] = []

    def stall_once(_elapsed: float) -> None:  # on the clock's thread, after each tick
        if clock.stats.ticks == 40 and not sent:
            time.sleep(0.1)  # stalled for five periods ...
            sent.append(clock.stats.ticks)
            sender.sendto(b"rtp", ("127.0.0.1", port))  # ... and a packet came meanwhile

    clocks.tick_observers.append(stall_once)
    clocks.start()
    try:
        await wait_for(lambda: bool(read_at) and clock.stats.ticks > 45)
    finally:
        clocks.stop()
        transport.close()
        sender.close()
    assert clock.stats.drains >= 1, clock.stats
    assert read_at == [40], "read before the tick that caught up mixed"
