"""Shared fixtures: a real Redis server (REDIS_URL, or one this session starts) and emulators."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import BotUnderTest, bot_env, free_port, start_in_process, stop


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
            pytest.fail("redis-server is not installed and REDIS_URL is not set")
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


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(free_port(), Path(tmp))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


@pytest.fixture
def prefix() -> str:
    return f"tbtest:{uuid.uuid4().hex[:10]}:"


@pytest.fixture
async def redis_client(redis_url: str, prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    emu = SlackEmulator()
    await emu.start()
    emu.add_user("U0ALICE", name="alice", display_name="Alice")
    emu.add_user("U0BOB", name="bob", display_name="Bob")
    try:
        yield emu
    finally:
        await emu.stop()


@pytest.fixture
async def openai_emu() -> AsyncIterator[OpenAIEmulator]:
    emu = OpenAIEmulator()
    await emu.start()
    try:
        yield emu
    finally:
        emu.release()
        await emu.stop()


@pytest.fixture
def bot_env_vars(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_url: str, prefix: str
) -> dict[str, str]:
    return bot_env(slack, openai_emu, redis_url, prefix)


@pytest.fixture
async def bot(
    slack: SlackEmulator, bot_env_vars: dict[str, str], redis_client: Redis
) -> AsyncIterator[BotUnderTest]:
    """Threadbridge running in this process (HTTP mode) against the emulators and real Redis."""
    running = await start_in_process(slack, bot_env_vars)
    try:
        yield running
    finally:
        await stop(running)
