"""Shared fixtures: a real Redis server (REDIS_URL, or one this session starts) and emulators."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest
from redis.asyncio import Redis

from bot.assistant.assistants import create_assistant
from bot.config import DEFAULT_INSTRUCTIONS
from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import ROOT, BotUnderTest, RedisServer, bot_env, free_port, start_in_process, stop


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
def emu(openai_emu: OpenAIEmulator) -> OpenAIEmulator:
    """The short name the emulator's and the backends' own tests use."""
    return openai_emu


@pytest.fixture
async def client(openai_emu: OpenAIEmulator) -> AsyncIterator[openai.AsyncOpenAI]:
    """The real SDK against the emulator, validating every response against its types."""
    sdk = openai.AsyncOpenAI(
        base_url=openai_emu.base_url,
        api_key=openai_emu.api_key,
        max_retries=0,
        _strict_response_validation=True,
    )
    yield sdk
    await sdk.close()


BACKENDS = ("responses", "assistants")
# Modules that inspect one backend's wire details directly (none at present).
RESPONSES_ONLY: frozenset[str] = frozenset()
ASSISTANT_MODEL = "gpt-4.1-mini"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that starts the bot runs once per backend: the bot's behaviour must not depend on it."""
    if "bot_env_vars" in metafunc.fixturenames:
        where = metafunc.definition.path.relative_to(ROOT).as_posix()
        backends = ("responses",) if where in RESPONSES_ONLY else BACKENDS
        metafunc.parametrize("backend_name", backends)


@pytest.fixture
async def bot_env_vars(
    backend_name: str, slack: SlackEmulator, openai_emu: OpenAIEmulator, redis_url: str, prefix: str
) -> dict[str, str]:
    if backend_name == "responses":
        return bot_env(slack, openai_emu, redis_url, prefix)
    # What an operator does once per server: `threadbridge assistant create`.
    async with openai.AsyncOpenAI(base_url=openai_emu.base_url, api_key=openai_emu.api_key) as client:
        assistant_id = await create_assistant(
            client, model=ASSISTANT_MODEL, instructions=DEFAULT_INSTRUCTIONS, code_interpreter=True
        )
    return bot_env(
        slack, openai_emu, redis_url, prefix, THREADBRIDGE_BACKEND="assistants", ASSISTANT_ID=assistant_id
    )


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
