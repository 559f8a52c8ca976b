"""Start Threadbridge against the emulators: in-process (integration) or as a process (e2e)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.app import Runtime
from bot.config import Settings
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import EventSender, SlackEmulator

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_env(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_url: str, prefix: str, **overrides: str
) -> dict[str, str]:
    """The environment a Threadbridge process gets in tests (HTTP mode unless overridden)."""
    env = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_API_URL": slack.api_url,
        "OPENAI_API_KEY": openai_emu.api_key,
        "OPENAI_BASE_URL": openai_emu.base_url,
        "OPENAI_MODEL": "test-model",
        "REDIS_URL": redis_url,
        "THREADBRIDGE_REDIS_PREFIX": prefix,
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "THREADBRIDGE_LEASE_SECONDS": "3",
        "THREADBRIDGE_SHUTDOWN_GRACE_SECONDS": "10",
        "THREADBRIDGE_LOG_LEVEL": "INFO",
    }
    env.update(overrides)
    return env


def settings_from(env: dict[str, str]) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg]


@dataclass
class BotUnderTest:
    """A running bot plus the signed-event sender that talks to it."""

    slack: SlackEmulator
    events: EventSender
    port: int
    runtime: Runtime | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def say(
        self,
        channel: str,
        text: str,
        *,
        user: str = "U0ALICE",
        thread_ts: str | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> str:
        """A person posts in Slack: record it and deliver every event Slack would send."""
        ts, events = self.slack.user_says(channel, user=user, text=text, thread_ts=thread_ts, files=files)
        for event in events:
            status, body = await self.events.send(event)
            assert status == 200, (status, body)
        return ts

    async def replies(
        self, channel: str, thread_ts: str, count: int, timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        """Wait until the bot has `count` finished messages in the thread; return them."""

        def done() -> list[dict[str, Any]] | None:
            msgs = [m for m in self.slack.bot_messages(channel, thread_ts) if not m.get("streaming")]
            return msgs if len(msgs) >= count else None

        return await self.slack.wait_for(done, timeout=timeout, what=f"{count} bot replies in {thread_ts}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


async def start_in_process(slack: SlackEmulator, env: dict[str, str]) -> BotUnderTest:
    runtime = Runtime(settings_from(env))
    await runtime.start()
    port = int(env["PORT"])
    events = EventSender(f"http://127.0.0.1:{port}/slack/events", slack.signing_secret)
    return BotUnderTest(slack, events, port, runtime=runtime)


async def start_process(
    slack: SlackEmulator, env: dict[str, str], log_path: Path, command: str = "run"
) -> BotUnderTest:
    """`threadbridge <command>` as a child process; returns once /healthz answers."""
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPENAI_", "THREADBRIDGE_"))
    }
    full_env.update(env)
    full_env["PYTHONUNBUFFERED"] = "1"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", command], cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT
    )
    port = int(env["PORT"])
    bot = BotUnderTest(
        slack,
        EventSender(f"http://127.0.0.1:{port}/slack/events", slack.signing_secret),
        port,
        process=proc,
        log_path=log_path,
    )
    await wait_healthy(bot, proc)
    return bot


async def wait_healthy(bot: BotUnderTest, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"bot exited with {proc.returncode}:\n{bot.logs()}")
            try:
                async with session.get(f"{bot.url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if loop.time() > deadline:
                raise AssertionError(f"bot never became healthy:\n{bot.logs()}")
            await asyncio.sleep(0.1)  # polling a child process's port; nothing else to wait on


async def eventually(check: Callable[[], Awaitable[object]], what: str, timeout: float = 10.0) -> None:
    """Wait for state another task or process writes to Redis (nothing to subscribe to)."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def stop(bot: BotUnderTest) -> int | None:
    await bot.events.close()
    if bot.runtime is not None:
        await bot.runtime.stop()
        return None
    if bot.process is not None and bot.process.poll() is None:
        bot.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(bot.process.wait, 30)
        except subprocess.TimeoutExpired:
            bot.process.kill()
            await asyncio.to_thread(bot.process.wait, 10)
    return bot.process.returncode if bot.process else None
