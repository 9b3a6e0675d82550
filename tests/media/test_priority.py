"""The mix threads' priority: raised for those threads only, and refused plainly."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from node.app import Node
from node.media import priority
from node.media.codec import OpusEncoder, OpusFrameDecoder
from node.media.engine import Listener, MixClocks, SessionMedia
from node.session.mixer import SessionMixer
from tests.conftest import node_config
from tests.media.test_engine import Recorded


def nice_of(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def nice_of_a_child() -> int:
    """The nice value a process started from the calling thread gets (field 19 of its stat)."""
    done = subprocess.run(
        ["sh", "-c", "cut -d' ' -f19 /proc/self/stat"], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def test_a_thread_raises_itself_and_no_other() -> None:
    if os.geteuid() != 0:
        pytest.fail("the suite runs as root here (CAP_SYS_NICE); this test needs it")
    before = nice_of(threading.get_native_id())
    seen: dict[str, int] = {}

    def raised() -> None:
        seen["returned"] = priority.raise_this_thread(-7, "a test thread")
        seen["kernel"] = nice_of(threading.get_native_id())
        seen["again"] = priority.raise_this_thread(-3, "a test thread")  # already higher

    thread = threading.Thread(target=raised)
    thread.start()
    thread.join()
    assert seen == {"returned": -7, "kernel": -7, "again": -7}
    assert nice_of(threading.get_native_id()) == before, "the caller's thread is unchanged"
    assert priority.raise_this_thread(0, "nothing") == before, "0 asks for nothing"


def test_a_node_that_may_not_raise_says_so_once_and_runs_on() -> None:
    """A process without CAP_SYS_NICE and with RLIMIT_NICE 0 (as an unprivileged container's
    user is): setpriv (util-linux) takes the capability out of its bounding set."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv is missing (Debian's util-linux has it)")
    script = textwrap.dedent(
        """
        import logging, os, resource, threading
        resource.setrlimit(resource.RLIMIT_NICE, (0, 0))
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        from node.media import priority
        got = [priority.raise_this_thread(-10, "the 10 ms mix clock") for _ in range(3)]
        print("got", got, os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        """
    )
    done = subprocess.run(
        [setpriv, "--bounding-set", "-sys_nice", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=os.getcwd(),
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert done.returncode == 0, done.stderr
    base = nice_of(threading.get_native_id())  # the child inherits this thread's value
    assert done.stdout.strip() == f"got {[base] * 3} {base}"
    warnings = [line for line in done.stderr.splitlines() if "normal priority" in line]
    assert len(warnings) == 1, done.stderr
    assert "CAP_SYS_NICE" in warnings[0] and "ulimit -e 30" in warnings[0]
    assert "media.realtime_nice = 0" in warnings[0]


async def test_the_mix_clock_and_its_helpers_run_raised_and_say_so() -> None:
    if os.geteuid() != 0:
        pytest.fail("the suite runs as root here (CAP_SYS_NICE); this test needs it")
    loop = asyncio.get_running_loop()
    clocks = MixClocks(loop, threads=2, nice=-6)
    mixer = SessionMixer(2, frame_samples=480)
    mixer.allocate("a", OpusFrameDecoder(480))
    media = SessionMedia(mixer)
    media.listeners[0] = Listener(Recorded(), OpusEncoder(2, 128000, 5, 10))  # type: ignore[arg-type]
    clocks.add("s", media, 10)
    loop_nice = nice_of(threading.get_native_id())

    def mix_threads() -> dict[str, int]:
        return {
            t.name: nice_of(t.native_id)
            for t in threading.enumerate()
            if t.name.startswith(("jamnet-mix-clock", "jamnet-mix-helper")) and t.native_id
        }

    clocks.start()
    try:
        # Each thread raises itself as it starts: wait for them (a busy machine is slow).
        deadline = time.monotonic() + 30
        while clocks.stats.ticks < 5 or set(mix_threads().values()) != {-6}:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        mine = mix_threads()
    finally:
        clocks.stop()
    assert set(mine) == {"jamnet-mix-clock-10ms", "jamnet-mix-helper-0"}, mine
    assert set(mine.values()) == {-6}, mine
    assert clocks.stats.nice == -6, "exported as jamnet_realtime_nice"
    assert nice_of(threading.get_native_id()) == loop_nice, "the event loop is left alone"


async def test_a_node_raises_its_event_loop_for_its_life_and_hands_off_at_normal(
    tmp_path: Path,
) -> None:
    """While a node runs, its loop's thread is raised; ``asyncio.to_thread`` work (SQLite,
    chain calls, the Spark roll-up's process) runs at normal priority; stopped, the loop's
    thread is back where it was."""
    if os.geteuid() != 0:
        pytest.fail("the suite runs as root here (CAP_SYS_NICE); this test needs it")
    me = threading.get_native_id()
    before = nice_of(me)
    config = node_config(tmp_path / "data", media={"realtime_nice": -4})
    async with Node(config):
        during = nice_of(me)
        handed_off = await asyncio.to_thread(lambda: nice_of(threading.get_native_id()))
        from_work = await asyncio.to_thread(nice_of_a_child)
    assert during == -4
    assert handed_off == priority.NORMAL
    assert from_work == priority.NORMAL
    assert nice_of(me) == before


@pytest.mark.parametrize("value", ["5", "-21", "high"])
def test_jam_refuses_a_nice_value_it_cannot_use(value: str, capsys: Any) -> None:
    from node.cli import build_parser

    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["jam", "s", "--nice", value])
    assert exited.value.code == 2
    assert "--nice" in capsys.readouterr().err
