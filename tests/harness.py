"""Start Threadbridge against the emulators: in-process (integration) or as a process (e2e)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import redis
from redis.asyncio import Redis as AsyncRedis

from bot.app import Runtime
from bot.config import Settings
from tests.emulators.openai import OpenAIEmulator, Recorded
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


# Backend-neutral views of what the bot did on the OpenAI side. The responses backend holds
# a conversation and starts a model turn with POST /v1/responses; the assistants backend
# holds a thread, adds messages to it and starts a run. A test runs one backend, so the
# other's share of each view is always empty.
_RUN = re.compile(r"/v1/threads/(?P<thread>[^/]+)/runs")
_MESSAGES = re.compile(r"/v1/threads/(?P<thread>[^/]+)/messages")


def model_requests(openai_emu: OpenAIEmulator) -> list[Recorded]:
    """Every request that asked for a model turn (tool-output follow-ups excluded), answered or not."""
    return [
        r
        for r in openai_emu.requests
        if r.method == "POST" and (r.path == "/v1/responses" or _RUN.fullmatch(r.path))
    ]


def model_inputs(openai_emu: OpenAIEmulator) -> list[str]:
    """What each model turn was given, as JSON for `in` checks.

    For a response, its request body; for a run, the messages added to its thread since
    the previous run there, plus the run's own body.
    """
    sent: list[str] = []
    added: dict[str, list[Any]] = {}
    for r in openai_emu.requests:
        if r.method != "POST":
            continue
        if r.path == "/v1/responses":
            sent.append(json.dumps(r.json))
        elif (m := _MESSAGES.fullmatch(r.path)) and r.status == 200:
            added.setdefault(m["thread"], []).append(r.json)
        elif m := _RUN.fullmatch(r.path):
            sent.append(json.dumps({"messages": added.pop(m["thread"], []), "run": r.json}))
    return sent


def conversation_ids(openai_emu: OpenAIEmulator) -> list[str]:
    """The conversations (responses) or threads (assistants) the bot opened and still has."""
    return [*openai_emu.conversations, *openai_emu.threads]


def conversation_metadata(openai_emu: OpenAIEmulator) -> list[dict[str, str]]:
    return [c.metadata for c in openai_emu.conversations.values()] + [
        t.metadata for t in openai_emu.threads.values()
    ]


def forget_conversations(openai_emu: OpenAIEmulator) -> None:
    """The server loses every conversation and thread (as after a retention purge)."""
    openai_emu.conversations.clear()
    openai_emu.threads.clear()


def fail_model_requests(openai_emu: OpenAIEmulator, *, status: int = 500, times: int = 1) -> None:
    """Fail the next `times` requests for a model turn (`times=0` cancels what is left)."""
    openai_emu.fail_next("POST", "/v1/responses", status=status, times=times)
    openai_emu.fail_next("POST", "/v1/threads/*/runs", status=status, times=times)


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


class RedisServer:
    """A redis-server process owned by the tests (AOF on, so restarts keep data)."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed and REDIS_URL is not set")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # waiting for a process we spawned to listen, not test sync

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


async def message_mapped(redis: AsyncRedis, prefix: str, ts: str) -> None:
    """Wait until a turn has recorded the server-side items of Slack message `ts` (it does so
    just after the answer is posted, so a test deleting the message at once must wait)."""

    async def mapped() -> bool:
        async for key in redis.scan_iter(match=f"{prefix}items:*"):
            if await redis.hexists(key, f"m:{ts}"):
                return True
        return False

    await eventually(mapped, f"the items of message {ts} to be recorded")
