"""/metrics speaks Prometheus (prometheus-client's own parser reads it) with labels and histograms."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.emulators.slack import SlackEmulator
from tests.harness import BotUnderTest, eventually, start_in_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0METRICS"


async def _scrape(bot: BotUnderTest) -> dict[str, dict[tuple, float]]:
    async with aiohttp.ClientSession() as http, http.get(f"{bot.url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        body = await resp.text()
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def _total(samples: dict[str, dict[tuple, float]], name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for k, v in samples.get(name, {}).items() if wanted <= set(k))


async def test_metrics_carry_histograms_tokens_refusals_and_queue_depth(
    slack: SlackEmulator, bot_env_vars: dict[str, str]
) -> None:
    bot = await start_in_process(slack, {**bot_env_vars, "THREADBRIDGE_USER_DAILY_TURNS": "1"})
    try:
        before = await _scrape(bot)
        ts = await bot.say(CHANNEL, f"{BOT} measure me")
        await bot.replies(CHANNEL, ts, 1)
        await bot.say(CHANNEL, "and again", thread_ts=ts)
        await slack.wait_for(lambda: slack.ephemerals, what="the limit note")
        after = await _scrape(bot)
    finally:
        await stop(bot)

    def grew(name: str, **labels: str) -> float:
        return _total(after, name, **labels) - _total(before, name, **labels)

    for histogram in ("ack_seconds", "first_token_seconds", "turn_seconds"):
        assert grew(f"threadbridge_{histogram}_count") >= 1, histogram
        assert f"threadbridge_{histogram}_bucket" in after
    assert grew("threadbridge_turns_total", team="T0TEAM", outcome="completed") == 1
    assert grew("threadbridge_turns_total", team="T0TEAM", outcome="refused") == 1
    assert grew("threadbridge_refusals_total", reason="budget_user_turns") == 1
    assert grew("threadbridge_tokens_total", team="T0TEAM", kind="output") > 0
    assert all(dict(k).get("model") for k in after["threadbridge_tokens_total"])
    assert grew("threadbridge_messages_total", result="queued") == 2
    assert "threadbridge_queue_depth" in after and "threadbridge_turns_in_flight" in after


async def test_turns_in_flight_returns_to_zero_when_the_turns_finish(bot: BotUnderTest) -> None:
    roots = [await bot.say(CHANNEL, f"{BOT} gauge {i}") for i in range(3)]
    for ts in roots:
        await bot.replies(CHANNEL, ts, 1)

    async def idle() -> bool:
        in_flight = (await _scrape(bot)).get("threadbridge_turns_in_flight", {})
        return sum(in_flight.values()) == 0

    # The reply is posted just before its task ends: wait for the gauge, within a bound.
    await eventually(idle, "turns_in_flight to drop to 0", timeout=5)
