"""The real-time threads' scheduling priority.

A node often shares its machine: a Spark job, a build, a browser, the AI bandmate. Under the
kernel's fair scheduler the node's audio path gets only its share of a core while those run:
packets wait in the sockets, ticks overrun, the clock skips, and every listener conceals and
buffers. Native jam servers run their audio threads at raised priority for the same reason.

The real-time threads are the event loop (it reads and sends every packet) and the mix
clock's threads; each asks for ``media.realtime_nice``. Linux keeps a nice value per thread (not
per process, whatever POSIX says) and a new thread or child process inherits its creator's,
so the work the loop hands off runs at the node's normal priority again: the loop's default
executor and the AI bandmate's thread start with ``normal()``, and child processes (anvil,
Spark) are started from those. Lowering a nice value needs CAP_SYS_NICE (root has it) or an
``RLIMIT_NICE`` that allows it (``ulimit -e 30``; a container's non-root user needs the
engine to set it: docs/operators.md). Without either, the threads keep their priority and
the node logs that once. A nice
value is a weight, not a real-time class: a raised thread that is busy for good still leaves
the others their (smaller) share, so it cannot lock up the machine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import weakref

log = logging.getLogger(__name__)

NICE_MIN = -20
NICE_MAX = 0

_refused = threading.Event()


NODE_ADVICE = "or set media.realtime_nice = 0 to leave it alone"


def raise_this_thread(nice: int, what: str, advice: str = NODE_ADVICE) -> int:
    """Ask for ``nice`` for the calling thread; returns the nice value it runs at afterwards.

    A thread already at ``nice`` or lower is left alone; ``nice`` 0 asks for nothing. A
    refusal is logged once per process, with ``advice`` on how not to ask."""
    if nice >= NICE_MAX or not hasattr(os, "setpriority"):
        return _current()
    tid = threading.get_native_id()
    try:
        now = os.getpriority(os.PRIO_PROCESS, tid)
        if now <= nice:
            return now
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as exc:
        if not _refused.is_set():
            _refused.set()
            log.warning(
                "%s runs at normal priority: raising it to nice %d was refused (%s). Allow "
                "it with CAP_SYS_NICE or an RLIMIT_NICE of %d (`ulimit -e %d`; a container: "
                "ulimits nice %d), %s; other work on this machine can then delay the audio",
                what,
                nice,
                exc.strerror or exc,
                20 - nice,
                20 - nice,
                20 - nice,
                advice,
            )
        return _current()
    log.debug("%s runs at nice %d", what, nice)
    return nice


def current() -> int:
    """The calling thread's nice value."""
    return _current()


def _current() -> int:
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except (OSError, AttributeError):
        return 0


NORMAL = _current()
"""The nice value the node was started with (read when this module is first imported)."""


def set_this_thread(nice: int) -> None:
    """Put the calling thread back at ``nice`` (a higher value: always allowed), if it is not."""
    if not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) != nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as exc:  # only lowering needs a privilege; say so, never fail the caller
        log.debug("could not set thread %d to nice %d: %s", tid, nice, exc)


def normal() -> None:
    """Give the calling thread the node's normal priority (an executor's initializer)."""
    set_this_thread(NORMAL)


_handing_off: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def hand_off_at_normal(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop``'s default executor (``asyncio.to_thread``) run at normal priority, once
    per loop: its threads are made by the loop's thread, which may run raised."""
    if loop in _handing_off:
        return
    loop.set_default_executor(
        concurrent.futures.ThreadPoolExecutor(
            thread_name_prefix="jamnet-worker", initializer=normal
        )
    )
    _handing_off.add(loop)
