"""The node keeps the garbage collector's full passes out of live sessions (node.heap)."""

from __future__ import annotations

import asyncio
import gc
import weakref

from node.app import Node
from node.heap import HeapKeeper


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_idle_refreeze_frees_what_became_garbage_while_frozen() -> None:
    keeper = HeapKeeper()
    alive = _Cycle()
    ref = weakref.ref(alive)
    keeper.start()
    assert keeper.freezes == 1
    assert gc.get_freeze_count() > 0
    del alive  # garbage now, but frozen: ordinary passes leave it alone
    gc.collect()
    assert ref() is not None
    keeper.observe(0)  # idle and never busy since: nothing to do
    assert keeper.freezes == 1
    assert ref() is not None
    keeper.observe(3)  # somebody is connected: no pause now
    assert keeper.freezes == 1
    assert ref() is not None
    keeper.observe(0)  # everybody left: thaw, collect, freeze again
    assert keeper.freezes == 2
    assert ref() is None
    gc.unfreeze()


async def test_node_freezes_its_heap_before_anyone_connects(node: Node) -> None:
    assert node.service is not None
    assert node.service.heap.freezes == 1  # during start, before the HTTP server opened
    assert gc.get_freeze_count() > 0
    gc.unfreeze()


async def test_loaded_models_are_frozen_at_the_next_idle_moment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import node_config

    async with Node(node_config(tmp_path / "data", ai={"enabled": True})) as running:
        assert running.service is not None and running.ai is not None
        await running.ai.ready()
        assert running.ai.status == "ready"
        for _ in range(200):  # the periodic check runs once a second
            if running.service.heap.freezes > 1:
                break
            await asyncio.sleep(0.05)
        assert running.service.heap.freezes == 2
    gc.unfreeze()
