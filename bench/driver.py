"""The load driver: POSTs pre-signed Slack deliveries on a schedule and times each ack.

It runs as its own process so that its clock is not held up by the emulators' work in the
benchmark process: an ack is timed from the moment the request is written until its
status line arrives, as Slack would see it.

Usage: python -m bench.driver PLAN.json RESULT.json
PLAN: [{"at": seconds from start, "url": …, "body": str, "headers": {…}}, …]
RESULT: [{"sent": wall time, "status": int, "ms": float}, …] in plan order.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp


async def deliver(plan: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = [{} for _ in plan]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def one(i: int, item: dict[str, Any]) -> None:
            delay = start + item["at"] - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent, t0 = time.time(), time.perf_counter()
            try:
                async with session.post(
                    item["url"], data=item["body"].encode(), headers=item["headers"]
                ) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            results[i] = {"sent": sent, "status": status, "ms": (time.perf_counter() - t0) * 1000}

        await asyncio.gather(*(one(i, item) for i, item in enumerate(plan)))
    return results


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    Path(sys.argv[2]).write_text(json.dumps(asyncio.run(deliver(plan))))


if __name__ == "__main__":
    main()
