"""Turn what the emulators recorded during a load into the benchmark's figures."""

from __future__ import annotations

import itertools
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator

# Slack calls that change what a person sees in the thread.
MESSAGE_WRITES = {
    "chat.postMessage",
    "chat.update",
    "chat.startStream",
    "chat.appendStream",
    "chat.stopStream",
}
VISIBLE = {*MESSAGE_WRITES, "assistant.threads.setStatus"}
TROUBLE = ("turn crashed", "reclaimed", "Traceback", "stays pending", "Too many connections")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass
class Measured:
    threads: int
    answered: int
    non_200_acks: int
    ack_ms: list[float] = field(repr=False)
    first_visible_s: list[float] = field(repr=False)
    final_s: list[float] = field(repr=False)
    final_after_model_ms: list[float] = field(repr=False)
    writes_per_reply: list[int] = field(repr=False)
    max_write_gap_s: float
    text_matches: int
    trouble_lines: int
    cpu_s: float
    edge_cpu_s: float  # the process that answers Slack (all of cpu_s without workers)
    deltas_per_reply: int
    rss_before_kb: int  # all of the bot's processes together, before the load
    peak_rss_kb: int  # the largest process's high-water mark
    total_peak_rss_kb: int  # all processes' high-water marks together
    peak_concurrent_turns: int
    elapsed_s: float
    throughput: float
    connections: dict[str, int]

    @property
    def cpu_ms_per_reply(self) -> float:
        return self.cpu_s * 1000 / max(1, self.answered)

    @property
    def edge_cpu_ms_per_reply(self) -> float:
        return self.edge_cpu_s * 1000 / max(1, self.answered)

    @property
    def cpu_ms_per_1k_tokens(self) -> float:
        return self.cpu_ms_per_reply * 1000 / max(1, self.deltas_per_reply)

    @property
    def kb_per_concurrent_turn(self) -> float:
        return (self.total_peak_rss_kb - self.rss_before_kb) / max(1, self.peak_concurrent_turns)

    def as_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        for name in ("ack_ms", "first_visible_s", "final_s", "final_after_model_ms"):
            values = raw.pop(name)
            raw[name] = {"p50": pct(values, 0.5), "p99": pct(values, 0.99), "max": max(values, default=0)}
        writes = raw.pop("writes_per_reply")
        raw["writes_per_reply"] = {
            "mean": statistics.fmean(writes) if writes else 0,
            "max": max(writes, default=0),
        }
        raw.update(
            cpu_ms_per_reply=self.cpu_ms_per_reply,
            edge_cpu_ms_per_reply=self.edge_cpu_ms_per_reply,
            cpu_ms_per_1k_tokens=self.cpu_ms_per_1k_tokens,
            kb_per_concurrent_turn=self.kb_per_concurrent_turn,
        )
        return raw


def _thread_of_calls(
    slack: SlackEmulator, channel: str, roots: list[str]
) -> dict[str, list[tuple[str, float]]]:
    """Per thread root: the (method, time) of every successful visible call, in order."""
    message_thread = {m["ts"]: root for root in roots for m in slack.bot_messages(channel, root)}
    root_set = set(roots)
    per: dict[str, list[tuple[str, float]]] = {root: [] for root in roots}
    for call in slack.calls:
        if call.method not in VISIBLE or not call.ok:
            continue
        thread = call.args.get("thread_ts")
        if thread not in root_set:
            thread = message_thread.get(call.args.get("ts") or call.response.get("ts"))
        if thread in per:
            per[thread].append((call.method, call.at))
    return per


def _peak_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def measure_load(
    *,
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    channel: str,
    roots: list[str],
    plan: list[dict[str, Any]],
    acks: list[dict[str, Any]],
    expected: str,
    cpu_s: float,
    edge_cpu_s: float,
    rss_before_kb: int,
    peak_rss_kb: int,
    total_peak_rss_kb: int,
    elapsed_s: float,
    connections: dict[str, int],
    logs: str,
) -> Measured:
    sent: dict[str, float] = {}
    for item, ack in zip(plan, acks, strict=True):
        sent[item["root"]] = min(sent.get(item["root"], ack["sent"]), ack["sent"])
    model_end = {
        c.metadata.get("slack_thread_ts", ""): openai_emu.model_done[c.id]
        for c in openai_emu.conversations.values()
        if c.id in openai_emu.model_done
    }
    per_thread = _thread_of_calls(slack, channel, roots)
    first, final, after_model, writes, intervals = [], [], [], [], []
    gap = 0.0
    answered = matches = 0
    for root in roots:
        finished = [m for m in slack.bot_messages(channel, root) if not m.get("streaming")]
        calls = per_thread[root]
        if not finished or not calls:
            continue
        answered += 1
        matches += any((m.get("text") or "").strip() == expected for m in finished)
        first.append(calls[0][1] - sent[root])
        message_calls = [at for method, at in calls if method in MESSAGE_WRITES]
        final.append(message_calls[-1] - sent[root])
        intervals.append((sent[root], message_calls[-1]))
        writes.append(len(message_calls))
        gap = max([gap, *(b - a for a, b in itertools.pairwise(message_calls))])
        if root in model_end:
            after_model.append((message_calls[-1] - model_end[root]) * 1000)
    trouble = sum(1 for line in logs.splitlines() if any(t in line for t in TROUBLE))
    return Measured(
        threads=len(roots),
        answered=answered,
        non_200_acks=sum(1 for a in acks if a["status"] != 200),
        ack_ms=[a["ms"] for a in acks],
        first_visible_s=first,
        final_s=final,
        final_after_model_ms=after_model,
        writes_per_reply=writes,
        max_write_gap_s=gap,
        text_matches=matches,
        trouble_lines=trouble,
        cpu_s=cpu_s,
        edge_cpu_s=edge_cpu_s,
        deltas_per_reply=len(expected.split()),
        rss_before_kb=rss_before_kb,
        peak_rss_kb=peak_rss_kb,
        total_peak_rss_kb=total_peak_rss_kb,
        peak_concurrent_turns=_peak_overlap(intervals),
        elapsed_s=elapsed_s,
        throughput=answered / elapsed_s if elapsed_s else 0.0,
        connections=connections,
    )
