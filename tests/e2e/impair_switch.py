"""A user-space Ethernet switch that delays and drops frames (this kernel has no tc netem).

    python tests/e2e/impair_switch.py PORT [PORT ...] [--delay-ms 15] [--jitter-ms 5]
        [--loss 0.01] [--seed 1]

Run inside the namespace that holds the switch ends of the veth links. Each port is read
with an AF_PACKET socket; a frame goes out of the port that last sent from its destination
MAC (or every other port, for broadcast and unknown MACs) after ``delay ± jitter`` ms, unless
it is dropped with probability ``loss``. Only IPv4 frames are impaired: ARP passes at once,
so neighbours resolve promptly. The veth offloads must be off (frames no larger than the
MTU): the test does that with ethtool. Prints "switch ready" when it forwards, and counts
of forwarded and dropped frames on SIGTERM.
"""

from __future__ import annotations

import argparse
import heapq
import random
import selectors
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
IPV4 = b"\x08\x00"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ports", nargs="+")
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    sockets: dict[str, socket.socket] = {}
    selector = selectors.DefaultSelector()
    for port in args.ports:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind((port, 0))
        sock.setblocking(False)
        sockets[port] = sock
        selector.register(sock, selectors.EVENT_READ, port)
    where: dict[bytes, str] = {}  # MAC -> port
    queue: list[tuple[float, int, str, bytes]] = []
    counts = {"forwarded": 0, "dropped": 0}
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("switch ready", flush=True)
    order = 0
    while running:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 0.05
        for key, _ in selector.select(min(timeout, 0.05)):
            port = key.data
            sock = sockets[port]
            while True:
                try:
                    frame, address = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                if address[2] == PACKET_OUTGOING:
                    continue  # our own sends
                where[frame[6:12]] = port
                impaired = frame[12:14] == IPV4
                if impaired and rng.random() < args.loss:
                    counts["dropped"] += 1
                    continue
                delay = 0.0
                if impaired:
                    delay = max(0.0, args.delay_ms + rng.uniform(-1, 1) * args.jitter_ms) / 1000
                order += 1
                heapq.heappush(queue, (time.monotonic() + delay, order, port, frame))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, source, frame = heapq.heappop(queue)
            target = where.get(frame[0:6])
            outs = [target] if target and target != source else [p for p in sockets if p != source]
            for out in outs:
                try:
                    sockets[out].send(frame)
                except OSError as exc:  # a link that is down: the frame is lost, as on a wire
                    print(f"send on {out}: {exc}", file=sys.stderr)
            counts["forwarded"] += 1
    print(f"switch done: {counts}", flush=True)


if __name__ == "__main__":
    main()
