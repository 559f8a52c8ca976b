"""The configuration and the budgets across real processes: SIGHUP reloads, shared counters."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import BotUnderTest, eventually, free_port, model_requests, start_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0PROC"


async def _logged(bot: BotUnderTest, text: str, times: int) -> None:
    async def seen() -> bool:
        return bot.logs().count(text) >= times

    await eventually(seen, f"{times}× {text!r} in the log", timeout=15)


def _instructions(openai_emu: OpenAIEmulator) -> list[str]:
    return [
        r.json.get("instructions") or r.json.get("additional_instructions")
        for r in model_requests(openai_emu)
    ]


async def test_sighup_reloads_the_configuration_of_run_and_its_workers(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    bot_env_vars: dict[str, str],
    tmp_path: Path,
    redis_client: object,
) -> None:
    config = tmp_path / "threadbridge.yml"
    config.write_text("default:\n  instructions: Persona one.\n")
    env = {**bot_env_vars, "THREADBRIDGE_CONFIG": str(config), "THREADBRIDGE_WORKER_PROCESSES": "1"}
    bot = await start_process(slack, env, tmp_path / "bot.log")
    try:
        assert bot.process is not None
        ts = await bot.say(CHANNEL, f"{BOT} one")
        await bot.replies(CHANNEL, ts, 1)

        config.write_text("default:\n  instructions: Persona two.\n")
        bot.process.send_signal(signal.SIGHUP)
        await _logged(bot, "configuration reloaded", 2)  # the edge and its worker process
        await bot.say(CHANNEL, "two", thread_ts=ts)
        await bot.replies(CHANNEL, ts, 2)

        config.write_text("default:\n  instructions: [broken\n")
        bot.process.send_signal(signal.SIGHUP)
        await _logged(bot, "keeping the last good one", 2)
        await bot.say(CHANNEL, "three", thread_ts=ts)
        await bot.replies(CHANNEL, ts, 3)
    finally:
        await stop(bot)
    assert _instructions(openai_emu) == ["Persona one.", "Persona two.", "Persona two."]
    assert f"{config}: line 3: not valid YAML" in bot.logs()


async def test_two_worker_processes_count_into_one_budget(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    bot_env_vars: dict[str, str],
    tmp_path: Path,
    redis_client: object,
) -> None:
    env = {**bot_env_vars, "THREADBRIDGE_USER_DAILY_TURNS": "1"}
    edge = await start_process(slack, {**env, "THREADBRIDGE_WORKERS": "false"}, tmp_path / "edge.log")
    first = await start_process(slack, {**env, "PORT": str(free_port())}, tmp_path / "w1.log", "worker")
    second: BotUnderTest | None = None
    try:
        ts = await edge.say(CHANNEL, f"{BOT} my one answer today")
        await edge.replies(CHANNEL, ts, 1)
        second = await start_process(slack, {**env, "PORT": str(free_port())}, tmp_path / "w2.log", "worker")
        await stop(first)  # from now on only the second worker runs turns
        other = await edge.say(CHANNEL, f"{BOT} one more?")
        await slack.wait_for(lambda: slack.ephemerals, what="the limit note")
    finally:
        for proc in (second, first, edge):
            if proc is not None:
                await stop(proc)
    assert slack.ephemerals[0]["thread_ts"] == other
    assert "reached today's limit of 1 answers" in slack.ephemerals[0]["text"]
    assert len(model_requests(openai_emu)) == 1
    assert second is not None and "budget_user_turns" in second.logs()


async def test_metrics_of_run_include_its_worker_processes(
    slack: SlackEmulator, bot_env_vars: dict[str, str], tmp_path: Path, redis_client: object
) -> None:
    env = {**bot_env_vars, "THREADBRIDGE_WORKER_PROCESSES": "1"}
    bot = await start_process(slack, env, tmp_path / "bot.log")
    try:
        ts = await bot.say(CHANNEL, f"{BOT} count me from a worker process")
        await bot.replies(CHANNEL, ts, 1)
        async with aiohttp.ClientSession() as http, http.get(f"{bot.url}/metrics") as resp:
            body = await resp.text()
    finally:
        await stop(bot)
    samples = [s for family in text_string_to_metric_families(body) for s in family.samples]
    names = [s.name for s in samples]
    assert len(names) == len({(s.name, tuple(sorted(s.labels.items()))) for s in samples}), "no duplicates"
    turns = [
        s for s in samples if s.name == "threadbridge_turns_total" and s.labels["outcome"] == "completed"
    ]
    assert sum(s.value for s in turns) == 1
    assert any(s.name == "threadbridge_turn_seconds_count" and s.value >= 1 for s in samples)
    assert any(s.name == "threadbridge_ack_seconds_count" and s.value >= 1 for s in samples)
    assert any(s.name == "threadbridge_tokens_total" and s.value > 0 for s in samples)
