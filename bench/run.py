"""Threadbridge benchmark: the bot as processes against the emulators and a private Redis.

Loads (each mention is delivered as Slack does: `app_mention` + `message`, signed):
- L200: 200 mentions in 200 new threads from 20 people at 100/s; the model waits 2 s, then
  sends 20 deltas 10 ms apart.
- long: 40 mentions at once, each answered with 400 deltas 5 ms apart after 0.5 s.
- L1000: 1,000 mentions in 1,000 threads from 100 people at 200/s, the L200 model.
- scaleout: L1000 with a zero-latency model, for 1, 2 and 4 worker processes.

Usage: .venv/bin/python -m bench.run --load L200|long|L1000|scaleout [--workers N] [--json F]
`--workers 0` (default) runs one default `threadbridge run`; N > 0 runs a Slack edge
(THREADBRIDGE_WORKERS=false) plus N `threadbridge worker` processes on the same Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from bench.measure import Measured, measure_load
from bench.procstat import connections, cpu_seconds, peak_rss_kb, rss_kb, with_children
from bench.report import print_table
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import EventSender, SlackEmulator
from tests.harness import BotUnderTest, RedisServer, bot_env, free_port, start_process, stop

CHANNEL = "C0BENCH"


@dataclass(frozen=True)
class Load:
    name: str
    threads: int
    rate: float  # mentions per second; 0 = all at once
    people: int
    cue: str  # the emulated model's profile (see the #pace cue in tests/emulators/openai/script.py)
    deltas: int


LOADS = {
    "L200": Load("L200", 200, 100, 20, "#pace:2000:20:10", 20),
    "long": Load("long", 40, 0, 20, "#pace:500:400:5", 400),
    "L1000": Load("L1000", 1000, 200, 100, "#pace:2000:20:10", 20),
    "zero": Load("zero", 1000, 500, 100, "#pace:0:20:0", 20),
}


def expected_text(deltas: int) -> str:
    return "word " * (deltas - 1) + "word."


class Bots:
    """The bot's processes for one run: one `run`, or an edge plus N workers."""

    def __init__(self, slack: SlackEmulator, env: dict[str, str], logs: Path, workers: int) -> None:
        self.slack, self.env, self.logs, self.workers = slack, env, logs, workers
        self.procs: list[BotUnderTest] = []

    async def start(self) -> BotUnderTest:
        if self.workers == 0:
            self.procs = [await start_process(self.slack, self.env, self.logs / "run.log")]
            return self.procs[0]
        edge = await start_process(
            self.slack, {**self.env, "THREADBRIDGE_WORKERS": "false"}, self.logs / "edge.log"
        )
        self.procs = [edge]
        for i in range(self.workers):
            env = {**self.env, "PORT": str(free_port())}
            self.procs.append(await start_process(self.slack, env, self.logs / f"worker{i}.log", "worker"))
        return edge

    @property
    def pids(self) -> list[int]:
        return with_children([p.process.pid for p in self.procs if p.process is not None])

    def log_text(self) -> str:
        return "\n".join(p.logs() for p in self.procs)

    async def stop(self) -> None:
        for proc in self.procs:
            await stop(proc)


def build_plan(
    slack: SlackEmulator, edge: BotUnderTest, load: Load
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every delivery of the load, pre-signed, with its send offset; and the thread roots."""
    sender: EventSender = edge.events
    plan: list[dict[str, Any]] = []
    roots: list[str] = []
    for i in range(load.threads):
        user = f"U0P{i % load.people:03d}"
        ts, events = slack.user_says(CHANNEL, user=user, text=f"<@U0BOT> question {i} {load.cue}")
        roots.append(ts)
        at = i / load.rate if load.rate else 0.0
        for event in events:
            body = json.dumps(sender.envelope(event))
            headers = sender.signed_headers(body.encode())
            plan.append({"at": at, "url": sender.url, "body": body, "headers": headers, "root": ts})
    return plan, roots


async def sample_connections(
    pids: list[int], ports: dict[str, int], peak: dict[str, int], stop: asyncio.Event
) -> None:
    while not stop.is_set():
        # Off the loop: the emulators' latency is part of what the bot is measured by.
        for name, count in (await asyncio.to_thread(connections, pids, ports)).items():
            peak[name] = max(peak.get(name, 0), count)
        with contextlib.suppress(TimeoutError):
            # Each sample parses /proc/net/tcp (thousands of lines under L1000) in this process,
            # whose loop runs the emulators: a few samples a second find the plateau.
            await asyncio.wait_for(stop.wait(), 0.3)


async def run_load(load: Load, workers: int, keep_logs: Path | None = None) -> Measured:
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(free_port(), Path(tmp))
        server.start()
        slack, openai_emu = SlackEmulator(), OpenAIEmulator()
        await slack.start()
        await openai_emu.start()
        for p in range(load.people):
            slack.add_user(f"U0P{p:03d}", name=f"person{p}", display_name=f"Person {p}")
        slack.add_user("U0ALICE", name="alice", display_name="Alice")
        env = bot_env(slack, openai_emu, server.url, "bench:", THREADBRIDGE_LOG_LEVEL="WARNING")
        bots = Bots(slack, env, Path(tmp), workers)
        try:
            edge = await bots.start()
            await warm_up(edge)
            pids = bots.pids
            rss_before = sum(rss_kb(pid) for pid in pids)
            cpu_before = sum(cpu_seconds(pid) for pid in pids)
            edge_pid = edge.process.pid if edge.process is not None else pids[0]
            edge_before = cpu_seconds(edge_pid)
            slack.calls.clear()
            plan, roots = build_plan(slack, edge, load)
            plan_file, result_file = Path(tmp) / "plan.json", Path(tmp) / "acks.json"
            plan_file.write_text(json.dumps(plan))
            ports = {"redis": server.port, "slack": slack.port, "openai": openai_emu.port}
            peak: dict[str, int] = {}
            done = asyncio.Event()
            sampler = asyncio.create_task(sample_connections(pids, ports, peak, done))
            started = time.time()
            driver = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.driver",
                str(plan_file),
                str(result_file),
                stdout=subprocess.DEVNULL,
            )
            await driver.wait()
            acks = json.loads(result_file.read_text())
            try:
                # A cheap check: this loop also runs the emulators whose clocks time the bot.
                await slack.wait_for(
                    lambda: set(roots) <= slack.answered_threads(CHANNEL),
                    timeout=120,
                    what="every answer",
                )
            except AssertionError as exc:
                print(f"not every thread was answered: {str(exc)[:300]}", file=sys.stderr)
            finished = time.time()
            done.set()
            await sampler
            cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
            edge_cpu = cpu_seconds(edge_pid) - edge_before
            peaks = [peak_rss_kb(pid) for pid in pids]
            return measure_load(
                slack=slack,
                openai_emu=openai_emu,
                channel=CHANNEL,
                roots=roots,
                plan=plan,
                acks=acks,
                expected=expected_text(load.deltas),
                cpu_s=cpu,
                edge_cpu_s=edge_cpu,
                rss_before_kb=rss_before,
                peak_rss_kb=max(peaks),
                total_peak_rss_kb=sum(peaks),
                elapsed_s=finished - started,
                connections=peak,
                logs=bots.log_text(),
            )
        finally:
            await bots.stop()
            if keep_logs is not None:
                copy_logs(Path(tmp), keep_logs)
            await slack.stop()
            await openai_emu.stop()
            server.stop()


def copy_logs(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for log_file in source.glob("*.log"):
        shutil.copy(log_file, target / log_file.name)


async def warm_up(bot: BotUnderTest) -> None:
    ts = await bot.say("C0WARM", "<@U0BOT> warm up")
    await bot.replies("C0WARM", ts, 1)


async def scale_out() -> dict[str, Any]:
    """Zero-latency-model throughput for 1, 2 and 4 worker processes."""
    rates: dict[int, float] = {}
    for workers in (1, 2, 4):
        measured = await run_load(LOADS["zero"], workers)
        rates[workers] = measured.throughput
        print(
            f"workers={workers}: {measured.throughput:.1f} turns/s,",
            f"answered {measured.answered}/{measured.threads}",
        )
    return {"throughput": rates, "ratios": {w: round(r / rates[1], 2) for w, r in rates.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--load", choices=[*LOADS, "scaleout"], default="L200")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--logs", type=Path, default=None, help="keep the bot's logs in this folder")
    args = parser.parse_args()
    if args.load == "scaleout":
        result: dict[str, Any] = uvloop.run(scale_out())
        print(json.dumps(result, indent=2))
    else:
        measured = uvloop.run(run_load(LOADS[args.load], args.workers, args.logs))
        print_table(args.load, args.workers, measured)
        result = measured.as_dict()
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
