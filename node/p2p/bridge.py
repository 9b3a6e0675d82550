"""The one place where asyncio (the node, aiortc) and trio (py-libp2p) meet.

trio runs in *guest mode* on the node's asyncio loop: the same thread, no extra dependency.
``TrioBridge.call`` runs a trio coroutine from asyncio and returns its result; cancelling the
awaiting asyncio task cancels the trio side, and a trio-side failure raises in the caller.
``TrioBridge.run_asyncio`` is the way back (a trio task awaiting node code).
``TrioBridge.spawn`` starts a long-lived trio task under the bridge's nursery. ``stop``
cancels everything trio runs and waits for it to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import outcome
import trio

log = logging.getLogger(__name__)
T = TypeVar("T")


class BridgeError(RuntimeError):
    """The trio side is not running (not started, or stopped)."""


class TrioBridge:
    """trio in guest mode on the running asyncio loop.

    trio allows one run per thread, so several nodes in one process (tests, benchmarks)
    share one bridge: ``acquire``/``release`` count its users and the last one stops it.
    """

    _shared: TrioBridge | None = None

    @classmethod
    async def acquire(cls) -> TrioBridge:
        """The process's bridge, started if needed."""
        if cls._shared is None or not cls._shared.running:
            cls._shared = TrioBridge()
            await cls._shared.start()
        cls._shared.users += 1
        return cls._shared

    async def release(self) -> None:
        """One user fewer; the last one stops the bridge."""
        self.users -= 1
        if self.users <= 0:
            if TrioBridge._shared is self:
                TrioBridge._shared = None
            await self.stop()

    def __init__(self) -> None:
        self.users = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nursery: trio.Nursery | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._done: asyncio.Future[outcome.Outcome[None]] | None = None
        self.failures = 0

    async def start(self) -> None:
        """Start trio on this loop; returns once its nursery is open."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        ready: asyncio.Future[None] = loop.create_future()
        self._done = loop.create_future()

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._token = trio.lowlevel.current_trio_token()
                ready.set_result(None)
                await trio.sleep_forever()

        def finished(result: outcome.Outcome[None]) -> None:
            assert self._done is not None
            if not self._done.done():
                self._done.set_result(result)
            if not ready.done():
                ready.set_exception(BridgeError("trio stopped before it started"))

        def soon(fn: Callable[[], object]) -> None:
            loop.call_soon_threadsafe(fn)

        trio.lowlevel.start_guest_run(
            main,
            run_sync_soon_threadsafe=soon,
            done_callback=finished,
            host_uses_signal_set_wakeup_fd=True,
        )
        await ready

    @property
    def running(self) -> bool:
        """True between ``start`` and ``stop``."""
        return self._nursery is not None

    def _require(self) -> trio.Nursery:
        if self._nursery is None:
            raise BridgeError("the p2p bridge is not running")
        return self._nursery

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await fn(*args)`` in trio; cancellation and errors cross both ways."""
        nursery = self._require()
        assert self._loop is not None
        future: asyncio.Future[T] = self._loop.create_future()
        scope = trio.CancelScope()

        async def run() -> None:
            with scope:
                try:
                    result = await fn(*args)
                except BaseException as exc:
                    if not future.done():
                        if isinstance(exc, trio.Cancelled):
                            future.cancel()
                            raise
                        future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    return
                if not future.done():
                    future.set_result(result)
            if not future.done():  # cancelled from the asyncio side
                future.cancel()

        nursery.start_soon(run)
        try:
            return await future
        except asyncio.CancelledError:
            scope.cancel()  # the asyncio caller gave up: so does trio
            raise

    async def run_asyncio(self, coro: Coroutine[Any, Any, T]) -> T:
        """From trio: run an asyncio coroutine on the node's loop and return its result.

        Cancelling the trio caller cancels the asyncio task; its errors raise in trio.
        """
        assert self._loop is not None
        assert self._token is not None
        task: asyncio.Task[T] = self._loop.create_task(coro)
        done = trio.Event()
        token = self._token
        task.add_done_callback(lambda _t: token.run_sync_soon(done.set))
        try:
            await done.wait()
        except BaseException:
            task.cancel()
            raise
        return task.result()

    def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any, name: str = "") -> None:
        """Run ``fn(*args)`` as a trio task until it returns or the bridge stops.

        An exception ends only that task: it is logged and counted, the bridge goes on.
        """
        nursery = self._require()

        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception:
                self.failures += 1
                log.exception("p2p task %s failed", name or getattr(fn, "__name__", fn))

        nursery.start_soon(guarded, name=name or None)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Cancel everything on the trio side and wait for it (idempotent)."""
        nursery, self._nursery = self._nursery, None
        if nursery is None or self._done is None:
            return
        nursery.cancel_scope.cancel()
        with contextlib.suppress(TimeoutError):
            result = await asyncio.wait_for(asyncio.shield(self._done), timeout_s)
            if isinstance(result, outcome.Error):
                log.warning("trio ended with %r", result.error)
