"""The benchmark's table: every figure beside its target (from issue 8)."""

from __future__ import annotations

from collections.abc import Callable

from bench.measure import Measured, pct

Row = tuple[str, Callable[[Measured], float], str, Callable[[float], bool] | None]

COMMON: list[Row] = [
    ("replies complete", lambda m: m.answered, "= threads", None),
    ("non-200 acks", lambda m: m.non_200_acks, "0", lambda v: v == 0),
    ("crashed/reclaimed/pool-error log lines", lambda m: m.trouble_lines, "0", lambda v: v == 0),
    ("ack p50 (ms)", lambda m: pct(m.ack_ms, 0.5), "L200: ≤ 5", None),
    ("ack p99 (ms)", lambda m: pct(m.ack_ms, 0.99), "L200: ≤ 20, L1000: ≤ 50", None),
    ("first visible sign p99 (s)", lambda m: pct(m.first_visible_s, 0.99), "L200: ≤ 0.5", None),
    ("final reply p50 (s)", lambda m: pct(m.final_s, 0.5), "—", None),
    ("final reply p99 (s)", lambda m: pct(m.final_s, 0.99), "≤ 3.0 (model 2.2)", None),
    (
        "final Slack write − model end p99 (ms)",
        lambda m: pct(m.final_after_model_ms, 0.99),
        "L200: ≤ 10",
        None,
    ),
    ("CPU per reply (ms)", lambda m: m.cpu_ms_per_reply, "≤ 12", None),
    ("  of which the Slack edge (ms)", lambda m: m.edge_cpu_ms_per_reply, "—", None),
    ("CPU per 1,000 output tokens (ms)", lambda m: m.cpu_ms_per_1k_tokens, "long: ≤ 60", None),
    ("Slack message writes per reply (max)", lambda m: max(m.writes_per_reply, default=0), "long: ≤ 6", None),
    ("longest gap between writes (s)", lambda m: m.max_write_gap_s, "≤ ~1", lambda v: v <= 1.2),
    ("posted text equals model text", lambda m: m.text_matches, "= threads", None),
    ("peak RSS, largest process (MB)", lambda m: m.peak_rss_kb / 1024, "L200: ≤ 120", None),
    ("peak RSS, all processes (MB)", lambda m: m.total_peak_rss_kb / 1024, "—", None),
    ("peak concurrent turns", lambda m: m.peak_concurrent_turns, "—", None),
    ("memory per concurrent turn (kB)", lambda m: m.kb_per_concurrent_turn, "L1000: ≤ 20", None),
    ("throughput (turns/s)", lambda m: m.throughput, "—", None),
]

# Targets that depend on the load.
LOAD_TARGETS: dict[str, dict[str, Callable[[float], bool]]] = {
    "L200": {
        "ack p50 (ms)": lambda v: v <= 5,
        "ack p99 (ms)": lambda v: v <= 20,
        "first visible sign p99 (s)": lambda v: v <= 0.5,
        "final reply p99 (s)": lambda v: v <= 3.0,
        "final Slack write − model end p99 (ms)": lambda v: v <= 10,
        "CPU per reply (ms)": lambda v: v <= 12,
        "peak RSS, largest process (MB)": lambda v: v <= 120,
    },
    "long": {
        "CPU per 1,000 output tokens (ms)": lambda v: v <= 60,
        "Slack message writes per reply (max)": lambda v: v <= 6,
    },
    "L1000": {
        "ack p99 (ms)": lambda v: v <= 50,
        "memory per concurrent turn (kB)": lambda v: v <= 20,
    },
}


def print_table(load: str, workers: int, m: Measured) -> None:
    shape = "one `threadbridge run`" if workers == 0 else f"1 edge + {workers} `threadbridge worker`"
    print(f"load {load}: {m.threads} threads on {shape}, {m.elapsed_s:.1f} s")
    print("| figure | value | target | |\n|---|---|---|---|")
    extra = LOAD_TARGETS.get(load, {})
    for name, get, target, check in COMMON:
        value = get(m)
        ok = extra.get(name, check)
        if name in ("replies complete", "posted text equals model text"):
            verdict = "ok" if value == m.threads else "MISS"
        else:
            verdict = "" if ok is None else ("ok" if ok(value) else "MISS")
        print(f"| {name} | {value:.3g} | {target} | {verdict} |")
    conns = ", ".join(f"{k} {v}" for k, v in m.connections.items())
    print(f"| peak connections | {conns} | bounded | |")
