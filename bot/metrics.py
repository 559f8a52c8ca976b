"""Process-local counters and gauges, exposed at /metrics in Prometheus text format."""

from __future__ import annotations

from collections import Counter

_counters: Counter[str] = Counter()
_gauges: dict[str, float] = {}


def inc(name: str, by: int = 1) -> None:
    _counters[name] += by


def gauge(name: str, value: float) -> None:
    _gauges[name] = value


def render() -> str:
    lines: list[str] = []
    for name, value in sorted(_counters.items()):
        lines += [f"# TYPE threadbridge_{name} counter", f"threadbridge_{name} {value}"]
    for name, g in sorted(_gauges.items()):
        lines += [f"# TYPE threadbridge_{name} gauge", f"threadbridge_{name} {g}"]
    return "\n".join(lines) + "\n"
