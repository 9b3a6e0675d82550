"""Prometheus metrics of the node (served at /metrics)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from node.media.engine import ClockStats
from node.session import pressure
from node.session.mixer import SessionMixer


class Metrics:
    """Instruments the mix clock and sessions; one registry per node."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tick_seconds = Histogram(
            "jamnet_tick_seconds",
            "Time to mix and encode one tick for all sessions",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05),
            registry=self.registry,
        )
        self.node_added_seconds = Histogram(
            "jamnet_node_added_latency_seconds",
            "Arrival of a frame at the node to departure of the mix containing it",
            buckets=(0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.06, 0.1, 0.2),
            registry=self.registry,
        )
        self.http_errors = Counter(
            "jamnet_http_client_errors",
            "Requests refused with a 4xx status",
            ["status"],
            registry=self.registry,
        )

    def watch(
        self, clock: Callable[[], ClockStats], mixers: Callable[[], dict[str, SessionMixer]]
    ) -> None:
        """Export clock counters and per-session figures read at scrape time."""
        self.registry.register(_LiveCollector(clock, mixers))

    def watch_p2p(self, stats: Callable[[], dict[str, Any]]) -> None:
        """Export the p2p host's figures (``P2PService.stats``) read at scrape time."""
        self.registry.register(_P2PCollector(stats))

    def watch_ai(self, stats: Callable[[], dict[str, float]]) -> None:
        """Export the AI's figures (``AiService.stats``) read at scrape time."""
        self.registry.register(_AiCollector(stats))


class _P2PCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield GaugeMetricFamily(
            "jamnet_p2p_peers", "Live nodes in this node's view", value=stats["peers"]
        )
        yield GaugeMetricFamily(
            "jamnet_p2p_connected", "Nodes with an open libp2p connection", value=stats["connected"]
        )
        for name, help_text in (
            ("published", "Adverts this node gossiped"),
            ("received", "Gossip messages received on the advert topic"),
            ("dial_failures", "Failed dials to bootstrap peers"),
            ("repaired", "Dead pubsub peers this node cleaned up"),
            ("unknown_protocols", "Streams opened for a protocol this node does not speak"),
            ("bridge_requests", "Bridge requests other nodes sent here"),
            ("bridge_errors", "Bridge requests that failed on the wire"),
        ):
            yield CounterMetricFamily(f"jamnet_p2p_{name}", help_text, value=stats[name])
        yield GaugeMetricFamily(
            "jamnet_p2p_links", "Open node-to-node session links", value=stats["links"]
        )
        bridge = CounterMetricFamily(
            "jamnet_p2p_bridge_events",
            "Session-bridge events: links opened/lost, packets in/out, bad messages",
            labels=["event"],
        )
        for event, count in sorted(stats["bridge"].items()):
            bridge.add_metric([event], count)
        yield bridge
        rejected = CounterMetricFamily(
            "jamnet_p2p_rejected_adverts", "Adverts dropped, by reason", labels=["reason"]
        )
        for reason, count in sorted(stats["rejected"].items()):
            rejected.add_metric([reason], count)
        yield rejected


class _AiCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, float]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield GaugeMetricFamily(
            "jamnet_ai_ready", "1 when the models are loaded", value=stats["ready"]
        )
        yield GaugeMetricFamily(
            "jamnet_ai_queue", "Compose/improvise requests waiting", value=stats["queue"]
        )
        yield GaugeMetricFamily("jamnet_bandmates", "Bandmates playing", value=stats["bandmates"])
        yield CounterMetricFamily(
            "jamnet_bandmate_bars", "Bars the bandmates scheduled", value=stats["bars"]
        )
        yield CounterMetricFamily(
            "jamnet_bandmate_late_bars",
            "Bars made too late to start on the grid (skipped)",
            value=stats["late_bars"],
        )
        yield CounterMetricFamily(
            "jamnet_bandmate_errors", "Bars that failed to generate", value=stats["errors"]
        )


class _LiveCollector(Collector):
    def __init__(
        self, clock: Callable[[], ClockStats], mixers: Callable[[], dict[str, SessionMixer]]
    ) -> None:
        self._clock = clock
        self._mixers = mixers

    def collect(self) -> Iterator[Metric]:
        clock = self._clock()
        yield CounterMetricFamily("jamnet_ticks", "Mix clock ticks", value=clock.ticks)
        yield CounterMetricFamily(
            "jamnet_tick_overruns",
            "Ticks that took longer than the tick period",
            value=clock.overruns,
        )
        yield CounterMetricFamily(
            "jamnet_ticks_skipped",
            "Ticks skipped after falling far behind (their time still passes: receivers "
            "conceal the gap)",
            value=clock.skipped,
        )
        yield CounterMetricFamily(
            "jamnet_overload_spells",
            "Spells of overrunning or skipped ticks that ended (each logged once)",
            value=clock.spells,
        )
        yield GaugeMetricFamily(
            "jamnet_realtime_nice",
            "Nice value the mix clock threads run at (media.realtime_nice where the node may raise "
            "them; 0 is normal priority)",
            value=clock.nice,
        )
        yield CounterMetricFamily(
            "jamnet_late_tick_drains",
            "Ticks that woke late after an on-time one (a stall) and let the event loop read "
            "the sockets before mixing",
            value=clock.drains,
        )
        pressure.host.poll(time.monotonic())  # the buffers poll too, but only while mixing
        if pressure.host.available:
            yield GaugeMetricFamily(
                "jamnet_host_cpu_pressure",
                "Share of the last second some task waited for a CPU (/proc/pressure/cpu); "
                f"from {pressure.BUSY_SHARE} the jitter buffers treat the host as overloaded",
                value=pressure.host.share,
            )
        mixers = self._mixers()
        yield GaugeMetricFamily("jamnet_sessions", "Sessions hosted", value=len(mixers))
        participants = GaugeMetricFamily(
            "jamnet_participants", "Participants per session", labels=["session"]
        )
        depth = GaugeMetricFamily(
            "jamnet_jitter_depth_frames", "Jitter buffer depth", labels=["session", "participant"]
        )
        target = GaugeMetricFamily(
            "jamnet_jitter_target_frames",
            "Jitter buffer target depth",
            labels=["session", "participant"],
        )
        jitter = GaugeMetricFamily(
            "jamnet_jitter_ms", "RFC 3550 interarrival jitter", labels=["session", "participant"]
        )
        packet = GaugeMetricFamily(
            "jamnet_packet_ms",
            "Duration of the participant's inbound packets (their frame size)",
            labels=["session", "participant"],
        )
        delay = GaugeMetricFamily(
            "jamnet_jitter_delay_ms",
            "Playout delay the jitter buffer keeps beyond the fastest transit",
            labels=["session", "participant"],
        )
        late = CounterMetricFamily(
            "jamnet_late_frames",
            "Frames that arrived after their play time",
            labels=["session", "participant"],
        )
        concealed = CounterMetricFamily(
            "jamnet_concealed_frames",
            "Frames concealed (lost or late)",
            labels=["session", "participant"],
        )
        lost = CounterMetricFamily(
            "jamnet_lost_frames",
            "Frames that never arrived in time",
            labels=["session", "participant"],
        )
        for session_id, mixer in mixers.items():
            count = 0
            for slot in mixer.slots:
                if slot is None:
                    continue
                count += 1
                labels = [session_id, slot.key]
                stats = slot.jitter.stats
                depth.add_metric(labels, slot.jitter.depth)
                target.add_metric(labels, slot.jitter.target)
                jitter.add_metric(labels, slot.jitter.jitter_ms)
                packet.add_metric(labels, slot.jitter.frame_s * 1000)
                delay.add_metric(labels, slot.jitter.delay_s * 1000)
                late.add_metric(labels, stats.late)
                concealed.add_metric(labels, stats.concealed)
                lost.add_metric(labels, stats.lost)
            participants.add_metric([session_id], count)
        yield from (participants, depth, target, jitter, packet, delay, late, concealed, lost)
