"""CLI: `threadbridge run | worker | check`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from bot import logs
from bot.app import Runtime
from bot.config import ConfigError, Settings, load_settings

log = logging.getLogger("threadbridge")


async def _serve(settings: Settings, *, edge: bool) -> int:
    runtime = Runtime(settings, edge=edge, workers=settings.workers or not edge)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runtime.start()
    except BaseException:
        await runtime.stop()
        raise
    log.info("threadbridge is up")
    await stop.wait()
    log.info("shutting down: finishing in-flight turns (grace %ss)", settings.shutdown_grace_seconds)
    await runtime.stop()
    log.info("stopped")
    return 0


async def _check(settings: Settings) -> int:
    runtime = Runtime(settings, edge=False, workers=False)
    problems: list[str] = []
    try:
        try:
            auth = await runtime.slack.auth_test()
            print(f"slack: ok (team {auth.get('team_id')}, bot user {auth.get('user_id')})")
        except Exception as exc:
            problems.append(f"slack: {type(exc).__name__}: {getattr(exc, 'response', {}).get('error', '')}")
        print("redis: ok" if await runtime.ready() else "redis: unreachable")
        if not await runtime.ready():
            problems.append("redis: unreachable")
        backend_problems = await runtime.backend.check()
        problems.extend(f"{settings.backend}: {p}" for p in backend_problems)
        if not backend_problems:
            print(f"{settings.backend}: ok (model {settings.openai_model})")
    finally:
        await runtime.backend.aclose()
        await runtime.redis.aclose()
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="threadbridge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="Slack edge (HTTP or Socket Mode) plus in-process workers")
    sub.add_parser("worker", help="workers only: run turns queued in Redis")
    sub.add_parser("check", help="check configuration, Slack, Redis and the assistant server")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"threadbridge: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    if args.command == "check":
        return asyncio.run(_check(settings))
    return asyncio.run(_serve(settings, edge=args.command == "run"))


if __name__ == "__main__":
    sys.exit(main())
