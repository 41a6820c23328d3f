"""Prometheus metrics, in a registry of their own so that several servers can live in one process."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


@dataclass
class CacheMetrics:
    registry: CollectorRegistry

    def __post_init__(self):
        self.events = Counter(
            "labelgate_cache_events", "Cache hits, misses, evictions and coalesced misses.", ["cache", "event"], registry=self.registry
        )
        self.bytes = Gauge("labelgate_cache_bytes", "Bytes held by the cache.", ["cache"], registry=self.registry)
        self.entries = Gauge("labelgate_cache_entries", "Entries held by the cache.", ["cache"], registry=self.registry)

    def count(self, cache: str, event: str) -> None:
        self.events.labels(cache, event).inc()

    def size(self, cache: str, nbytes: int, entries: int) -> None:
        self.bytes.labels(cache).set(nbytes)
        self.entries.labels(cache).set(entries)


@dataclass
class SharedCacheMetrics:
    """The shared feature tier (Redis): lookups, writes, cross-replica single flight, outages."""

    registry: CollectorRegistry

    def __post_init__(self):
        self.events = Counter(
            "labelgate_shared_cache_events",
            "Shared feature tier events: hit, miss, write, error, skipped (tier down), lock_acquired, lock_waited "
            "(another replica computed it), lock_timeout (waited the bound, computed here).",
            ["tier", "event"], registry=self.registry,
        )
        self.outages = Counter("labelgate_shared_cache_outages", "Times the shared tier went unreachable.", ["tier"],
                               registry=self.registry)
        self.up = Gauge("labelgate_shared_cache_up", "1 while the shared tier answers, 0 during an outage.", ["tier"],
                        registry=self.registry)

    def count(self, tier: str, event: str) -> None:
        self.events.labels(tier, event).inc()


@dataclass
class BatchMetrics:
    registry: CollectorRegistry

    def __post_init__(self):
        self.batch_size = Histogram(
            "labelgate_batch_size", "Items per model call.", ["stage", "model"], buckets=_BATCH_BUCKETS, registry=self.registry
        )
        self.queue_wait = Histogram(
            "labelgate_queue_wait_seconds", "Time from submit to the start of the model call.", ["stage", "model"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.model_seconds = Histogram(
            "labelgate_model_seconds", "Duration of one batched model call.", ["stage", "model"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.dropped = Counter(
            "labelgate_batch_dropped", "Items dropped before running (cancelled, expired, queue full).",
            ["stage", "model", "reason"], registry=self.registry,
        )


@dataclass
class VideoMetrics:
    """Open video tracking sessions and the memory they hold (as last measured, between model runs)."""

    registry: CollectorRegistry

    def __post_init__(self):
        self.sessions = Gauge("labelgate_video_sessions", "Video tracking sessions open.", registry=self.registry)
        self.bytes = Gauge("labelgate_video_session_bytes", "Bytes held by the open video sessions (frames and tracking state).",
                           registry=self.registry)

    def size(self, sessions: int, nbytes: int) -> None:
        self.sessions.set(sessions)
        self.bytes.set(nbytes)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self):
        self.requests = Counter(
            "labelgate_requests", "RPCs by method and status code.", ["method", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "labelgate_request_seconds", "RPC latency by method.", ["method"], buckets=_LATENCY_BUCKETS, registry=self.registry
        )
        self.stage_seconds = Histogram(
            "labelgate_stage_seconds", "Time in non-model request stages (image decode, mask encode).", ["stage"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.cache = CacheMetrics(self.registry)
        self.shared_cache = SharedCacheMetrics(self.registry)
        self.batch = BatchMetrics(self.registry)
        self.video = VideoMetrics(self.registry)

    def serve(self, host: str, port: int):
        """Starts the /metrics HTTP endpoint; returns the server (its port may have been 0)."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, server.server_address[1])
        return server
