"""Prometheus metrics (prometheus-client), exposed at /metrics.

Call sites name a metric and give its labels: `inc("turns_total", team=…, outcome=…)`,
`observe("turn_seconds", 1.2, outcome=…)`, `gauge("turns_in_flight", 3)`. A name not declared
below is created on first use as an unlabelled counter or gauge, so a new call site needs no
change here. Several processes on one host (run + worker) can share one view through
prometheus-client's multi-process mode: PROMETHEUS_MULTIPROC_DIR (see the README).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Metric,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

PREFIX = "threadbridge_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds; acks must stay far below Slack's 3 s, turns run up to minutes.
ACK_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
TURN_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
RATIO_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.5)

_metrics: dict[str, Any] = {}


def _declare() -> None:
    def counter(name: str, doc: str, *labels: str) -> None:
        _metrics[name] = Counter(PREFIX + name, doc, labels)

    def histogram(name: str, doc: str, buckets: tuple[float, ...], *labels: str) -> None:
        _metrics[name] = Histogram(PREFIX + name, doc, labels, buckets=buckets)

    def gauge_(name: str, doc: str, mode: Any, *labels: str) -> None:
        _metrics[name] = Gauge(PREFIX + name, doc, labels, multiprocess_mode=mode)

    counter("messages_total", "Messages offered to the queue, by what became of them.", "result")
    counter("turns_total", "Turns finished, by workspace and outcome.", "team", "outcome")
    counter("turns_reclaimed_total", "Queued messages taken over from a stopped worker.")
    counter("refusals_total", "Messages or turns refused, by reason.", "reason")
    counter(
        "tokens_total",
        "Model tokens, by workspace, model and kind (input, output, cached).",
        "team",
        "model",
        "kind",
    )
    counter("feedback_total", "Feedback buttons pressed, by value.", "value")
    histogram("ack_seconds", "Time from a Slack request to its acknowledgement.", ACK_BUCKETS)
    histogram("first_token_seconds", "Time from a turn's start to the first answer text.", TURN_BUCKETS)
    histogram("turn_seconds", "Duration of a turn, by outcome.", TURN_BUCKETS, "outcome")
    histogram(
        "budget_used_ratio",
        "Share of a daily token limit in use after a turn, by scope.",
        RATIO_BUCKETS,
        "scope",
    )
    gauge_("turns_in_flight", "Turns this process is running.", "livesum")
    gauge_("queue_depth", "Queued messages no worker has read yet (from Redis).", "mostrecent")
    gauge_("queue_pending", "Messages read by a worker and not yet finished (from Redis).", "mostrecent")
    gauge_("team_tokens_today", "Tokens a workspace used in the current budget day.", "max", "team")


_declare()


def _metric(name: str, kind: type[Counter] | type[Gauge], labels: dict[str, str]) -> Any:
    metric = _metrics.get(name)
    if metric is None:
        mode: dict[str, Any] = {"multiprocess_mode": "livesum"} if kind is Gauge else {}
        metric = _metrics[name] = kind(PREFIX + name, name.replace("_", " "), sorted(labels), **mode)
    return metric.labels(**labels) if labels else metric


def inc(name: str, by: float = 1, **labels: str) -> None:
    _metric(name, Counter, labels).inc(by)


def gauge(name: str, value: float, **labels: str) -> None:
    _metric(name, Gauge, labels).set(value)


def observe(name: str, value: float, **labels: str) -> None:
    metric = _metrics[name]
    (metric.labels(**labels) if labels else metric).observe(value)


class Timer:
    """Seconds since it was made (monotonic)."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start


async def timed_ack(next_: Callable[[], Awaitable[Any]]) -> Any:
    """Bolt middleware (arguments are injected by name): the dispatch up to the ack, timed."""
    timer = Timer()
    try:
        return await next_()
    finally:
        observe("ack_seconds", timer.elapsed)


def render(multiproc_dir: Path | None = None) -> bytes:
    """The text exposition; with a multi-process directory, every process's values merged."""
    if multiproc_dir is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    shared = multiprocess.MultiProcessCollector(None, path=str(multiproc_dir))
    if values.ValueClass is values.MutexValue:
        # This process keeps its own values in memory (it set the directory up for its worker
        # processes only): add them to what the workers wrote.
        registry.register(_Merged([REGISTRY, shared]))
    else:
        registry.register(shared)
    return generate_latest(registry)


class _Merged(Collector):
    """Families of several collectors as one: samples with the same name and labels add up."""

    def __init__(self, sources: list[Any]) -> None:
        self._sources = sources

    def collect(self) -> list[Metric]:
        merged: dict[str, Metric] = {}
        for source in self._sources:
            for family in source.collect():
                into = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                into.samples.extend(family.samples)
        for family in merged.values():
            sums: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                sums[key] = sums.get(key, 0.0) + sample.value
            family.samples = [Sample(name, dict(labels), value) for (name, labels), value in sums.items()]
        return list(merged.values())


def process_exited(multiproc_dir: Path | None) -> None:
    """Drop this process's live gauges from the shared directory when it stops."""
    if multiproc_dir is not None:
        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(os.getpid(), path=str(multiproc_dir))
