"""Presence: who is still there, from media arrivals and peer-connection state (time injected)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.session.presence import Liveness, Presence


def states(presence: Presence, now: float, heard: dict[str, float]) -> list[tuple[str, str]]:
    return [(t.participant_id, t.state.value) for t in presence.check(now, heard)]


def test_a_silent_participant_is_lost_then_gone_after_the_grace() -> None:
    p = Presence(media_timeout_s=1.5, grace_s=3.0)
    p.joined("a", 0.0)
    p.connected("a", 1.0)
    heard = {"a": 2.0}
    assert states(p, 3.4, heard) == []  # 1.4 s of silence: still live
    assert states(p, 3.6, heard) == [("a", "lost")]
    assert states(p, 6.5, heard) == []  # within the grace
    assert states(p, 6.7, heard) == [("a", "gone")]
    assert p.state("a") is None  # forgotten once gone


def test_audio_flowing_again_within_the_grace_brings_them_back() -> None:
    p = Presence(media_timeout_s=1.5, grace_s=3.0)
    p.joined("a", 0.0)
    p.connected("a", 0.0)
    assert states(p, 2.0, {"a": 0.2}) == [("a", "lost")]
    assert states(p, 3.0, {"a": 2.9}) == [("a", "live")]
    assert p.state("a") == Liveness.LIVE


def test_a_failed_connection_is_lost_at_once_and_only_a_new_one_brings_it_back() -> None:
    p = Presence(media_timeout_s=1.5, grace_s=3.0)
    p.joined("a", 0.0)
    p.connected("a", 0.0)
    change = p.failed("a", 1.0, "connection failed")
    assert change is not None and change.state == Liveness.LOST
    # Stray packets of the dead connection do not revive it ...
    assert states(p, 1.2, {"a": 1.1}) == []
    # ... a new connection does.
    back = p.connected("a", 2.0)
    assert back is not None and back.state == Liveness.LIVE
    assert states(p, 2.5, {"a": 2.4}) == []


def test_a_failed_connection_not_replaced_in_time_is_gone() -> None:
    p = Presence(media_timeout_s=1.5, grace_s=3.0)
    p.joined("a", 0.0)
    p.connected("a", 0.0)
    p.failed("a", 1.0, "connection closed")
    transitions = p.check(4.1, {"a": 0.9})
    assert [(t.state, t.reason) for t in transitions] == [
        (Liveness.GONE, "connection lost (connection closed; silent 3.2 s)")
    ]


def test_a_new_connection_has_time_for_ice_and_dtls_before_its_first_packet() -> None:
    p = Presence(media_timeout_s=1.5, grace_s=3.0, first_media_s=10.0)
    p.joined("a", 0.0)
    p.connected("a", 0.0)
    assert states(p, 5.0, {}) == []  # no packet yet on this connection: ICE/DTLS may be slow
    assert states(p, 10.5, {}) == [("a", "lost")]


def test_never_connected_and_pages_closed_before_connecting_time_out() -> None:
    p = Presence(grace_s=3.0, connect_timeout_s=30.0)
    p.joined("slow", 0.0)
    p.joined("page", 0.0)
    p.socket_closed("page", 1.0, sockets_left=0)
    assert states(p, 3.9, {}) == []
    assert states(p, 4.1, {}) == [("page", "gone")]
    assert states(p, 29.0, {}) == []
    assert states(p, 30.5, {}) == [("slow", "gone")]


def test_a_socket_closing_does_not_drop_a_musician_whose_audio_flows() -> None:
    p = Presence()
    p.joined("a", 0.0)
    p.connected("a", 0.0)
    p.socket_closed("a", 0.5, sockets_left=0)
    assert states(p, 20.0, {"a": 19.9}) == []
    assert p.state("a") == Liveness.LIVE


@settings(max_examples=100, deadline=None)
@given(
    gaps=st.lists(st.floats(0.0, 6.0), min_size=1, max_size=40),
    step=st.sampled_from([0.1, 0.25, 0.5]),
)
def test_nobody_is_dropped_while_heard_and_everyone_silent_is_dropped_in_bounded_time(
    gaps: list[float], step: float
) -> None:
    """Packets with arbitrary silences between them: a participant is gone exactly when a
    silence exceeds timeout + grace, and within one check step of it."""
    timeout, grace = 1.5, 3.0
    p = Presence(media_timeout_s=timeout, grace_s=grace)
    p.joined("a", -0.01)
    p.connected("a", -0.01)  # answered just before the first packet
    arrivals, t = [0.0], 0.0
    for gap in gaps:
        t += gap
        arrivals.append(t)
    now, last, gone_at = 0.0, 0.0, None
    end = arrivals[-1] + timeout + grace + 2 * step
    i = 0
    while now <= end and gone_at is None:
        while i < len(arrivals) and arrivals[i] <= now:
            last = arrivals[i]
            i += 1
        for change in p.check(now, {"a": last}):
            if change.state == Liveness.GONE:
                gone_at = now
        now += step
    assert gone_at is not None, "silence after the last packet must drop them"
    silence = gone_at - last
    assert silence > timeout + grace - 1e-9
    # Gone at the first check after timeout + grace (plus the check before it noticed the loss)
    assert silence <= timeout + grace + 2 * step + 1e-9
