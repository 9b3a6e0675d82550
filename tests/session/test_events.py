"""The event bus: listeners, bounded subscriptions, closing a participant's sockets."""

from __future__ import annotations

import asyncio

from node.session.events import Chatted, Closed, EventBus, Left, Levels
from node.session.session import Participant


def participant(pid: str) -> Participant:
    return Participant(pid, "0x" + "1" * 40, pid, 0, "t", 0.0)


async def test_listeners_and_subscribers_see_every_event_in_order() -> None:
    bus = EventBus()
    heard: list[tuple[str, str]] = []
    bus.listen(lambda sid, e: heard.append((sid, type(e).__name__)))
    sub = bus.subscribe("s1", "a")
    other = bus.subscribe("s2", "b")
    alice = participant("a")
    bus.publish("s1", Chatted(alice, "hi", 1.0))
    bus.publish("s1", Levels({}, {}))
    assert heard == [("s1", "Chatted"), ("s1", "Levels")]
    assert (await sub.queue.get()).wire()["text"] == "hi"  # type: ignore[union-attr]
    assert (await sub.queue.get()).wire()["type"] == "levels"  # type: ignore[union-attr]
    assert other.queue.empty()


async def test_a_subscriber_too_far_behind_is_cut_off_not_buffered() -> None:
    bus = EventBus(queue_size=4)
    slow = bus.subscribe("s", "a")
    for _ in range(10):
        bus.publish("s", Levels({}, {}))
    assert slow.closed and slow.reason == "too slow"
    assert bus.cut_off == 1 and bus.subscribers("s") == 0
    items = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
    assert items[-1] is None  # the end marker got in, even though the queue was full


async def test_leaving_closes_that_participants_sockets_only() -> None:
    bus = EventBus()
    a1, a2, b = bus.subscribe("s", "a"), bus.subscribe("s", "a"), bus.subscribe("s", "b")
    assert bus.held_by("s", "a") == 2
    bus.publish("s", Left(participant("a"), "removed by the owner"))
    bus.close_participant("s", "a", "removed by the owner")
    for sub in (a1, a2):
        assert (await sub.queue.get()).wire()["reason"] == "removed by the owner"  # type: ignore[union-attr]
        assert await sub.queue.get() is None
    bus.publish("s", Chatted(participant("b"), "still here", 2.0))
    assert a1.queue.empty() and a2.queue.empty()
    assert (await b.queue.get()).wire()["type"] == "left"  # type: ignore[union-attr]
    assert (await b.queue.get()).wire()["text"] == "still here"  # type: ignore[union-attr]
    bus.publish("s", Closed())
    bus.close_session("s")
    assert (await asyncio.wait_for(b.queue.get(), 1)).wire() == {"type": "closed"}  # type: ignore[union-attr]
    assert await b.queue.get() is None


def test_a_failing_listener_does_not_stop_the_others() -> None:
    bus = EventBus()
    seen: list[str] = []

    def broken(_sid: str, _e: object) -> None:
        raise RuntimeError("boom")

    bus.listen(broken)
    bus.listen(lambda _sid, e: seen.append(type(e).__name__))
    bus.publish("s", Closed())
    assert seen == ["Closed"]
