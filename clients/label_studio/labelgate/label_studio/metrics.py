"""Prometheus metrics of the backend, served at GET /metrics. One registry per app, so tests and
several apps in one process do not share counters."""

from __future__ import annotations

from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class BackendMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.tasks = Counter("labelgate_ls_tasks", "Tasks predicted, by mode and outcome",
                             ["mode", "outcome"], registry=self.registry)
        self.seconds = Histogram("labelgate_ls_predict_seconds", "Time to answer one /predict request, by mode",
                                 ["mode"], registry=self.registry,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        self.pre_embedded = Counter("labelgate_ls_pre_embedded_images", "Images embedded ahead of use, by outcome",
                                    ["outcome"], registry=self.registry)
        self.refinements = Counter("labelgate_ls_refinements", "Clicks that refined the previous mask (refined), or "
                                   "found it evicted in labelgate and started afresh (expired)",
                                   ["outcome"], registry=self.registry)

    @contextmanager
    def time(self, mode: str):
        with self.seconds.labels(mode=mode).time():
            yield

    def count_tasks(self, mode: str, ok: int, failed: int) -> None:
        self.tasks.labels(mode=mode, outcome="ok").inc(ok)
        self.tasks.labels(mode=mode, outcome="error").inc(failed)

    def render(self) -> bytes:
        return generate_latest(self.registry)
