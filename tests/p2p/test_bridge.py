"""trio in guest mode on the asyncio loop: results, errors and cancellation cross both ways."""

from __future__ import annotations

import asyncio

import pytest
import trio
import trio.lowlevel

from node.p2p.bridge import BridgeError, TrioBridge


async def test_results_errors_and_cancellation_cross_the_bridge() -> None:
    bridge = TrioBridge()
    with pytest.raises(BridgeError):
        await bridge.call(trio.sleep, 0)
    await bridge.start()
    try:

        async def double(x: int) -> int:
            await trio.sleep(0.01)
            return 2 * x

        assert await bridge.call(double, 21) == 42

        async def fail() -> None:
            await trio.lowlevel.checkpoint()
            raise ValueError("from trio")

        with pytest.raises(ValueError, match="from trio"):
            await bridge.call(fail)

        cancelled = trio.Event()

        async def forever() -> None:
            try:
                await trio.sleep_forever()
            finally:
                cancelled.set()

        task = asyncio.create_task(bridge.call(forever))
        await asyncio.sleep(0.05)
        task.cancel()  # asyncio → trio
        with pytest.raises(asyncio.CancelledError):
            await task
        await bridge.call(cancelled.wait)

        # A failing background task is counted; the bridge goes on.
        async def broken() -> None:
            raise RuntimeError("boom")

        bridge.spawn(broken, name="broken")
        await bridge.call(trio.sleep, 0.01)
        assert bridge.failures == 1
        assert await bridge.call(double, 1) == 2

        # trio → asyncio: stopping the bridge cancels a call in progress.
        pending = asyncio.create_task(bridge.call(trio.sleep_forever))
        await asyncio.sleep(0.01)
    finally:
        await bridge.stop()
    with pytest.raises(asyncio.CancelledError):
        await pending
    assert not bridge.running
    await bridge.stop()  # idempotent
