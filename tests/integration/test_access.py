"""Access rules: outside them one private note, and no model call, download or stored state."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.slack import SlackEmulator
from tests.harness import BotUnderTest, model_requests, start_in_process, stop

BOT = "<@U0BOT>"
CHANNEL = "C0GATE"


async def _refused_once(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    redis_client: Redis,
    prefix: str,
    env: dict[str, str],
    *,
    user: str = "U0ALICE",
    channel: str = CHANNEL,
) -> dict:
    """A mention with a file from `user`: the one note the bot gave, once sure it did nothing else."""
    bot = await start_in_process(slack, env)
    try:
        report = slack.host_file("report.txt", b"numbers\n", mimetype="text/plain", filetype="text")
        ts = await bot.say(channel, f"{BOT} summarise this", user=user, files=[report])
        await slack.wait_for(lambda: slack.ephemerals, what="a private note")
        # A second message in the same thread is refused without another note.
        await bot.say(channel, f"{BOT} hello?", user=user, thread_ts=ts)
    finally:
        await stop(bot)
    [note] = slack.ephemerals
    assert note["user"] == user and note["thread_ts"] == ts
    assert not model_requests(openai_emu)
    assert not slack.downloads
    assert not slack.bot_messages(channel, ts)
    stream = f"{prefix}turns".encode()
    assert await redis_client.xlen(stream) == 0
    stored = [k async for k in redis_client.scan_iter(match=f"{prefix}*") if k != stream]
    assert all(b":refused:" in k for k in stored), stored
    return note


async def test_denied_workspace_gets_one_note_and_no_model_call(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    redis_client: Redis,
    prefix: str,
    bot_env_vars: dict[str, str],
) -> None:
    env = {**bot_env_vars, "THREADBRIDGE_ALLOWED_TEAMS": "T0SOMEONEELSE"}
    note = await _refused_once(slack, openai_emu, redis_client, prefix, env)
    assert "not available to you here" in note["text"]


async def test_denied_channel_gets_one_note_and_no_model_call(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    redis_client: Redis,
    prefix: str,
    bot_env_vars: dict[str, str],
) -> None:
    env = {**bot_env_vars, "THREADBRIDGE_ALLOWED_CHANNELS": "C0ELSEWHERE"}
    note = await _refused_once(slack, openai_emu, redis_client, prefix, env)
    assert "not available in this conversation" in note["text"]


async def test_denied_user_gets_one_note_and_no_model_call(
    slack: SlackEmulator,
    openai_emu: OpenAIEmulator,
    redis_client: Redis,
    prefix: str,
    bot_env_vars: dict[str, str],
    tmp_path: Path,
) -> None:
    config = tmp_path / "threadbridge.yml"
    config.write_text("access:\n  users:\n    deny: [U0BOB]\n")
    env = {**bot_env_vars, "THREADBRIDGE_CONFIG": str(config)}
    note = await _refused_once(slack, openai_emu, redis_client, prefix, env, user="U0BOB")
    assert "not available to you here" in note["text"]


async def test_allowed_user_is_answered_beside_a_denied_one(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, bot_env_vars: dict[str, str]
) -> None:
    bot = await start_in_process(slack, {**bot_env_vars, "THREADBRIDGE_ALLOWED_USERS": "U0ALICE"})
    try:
        ts = await bot.say(CHANNEL, f"{BOT} hi from alice")
        await bot.replies(CHANNEL, ts, 1)
        await bot.say(CHANNEL, "and bob chimes in", user="U0BOB", thread_ts=ts)
        await slack.wait_for(lambda: slack.ephemerals, what="bob's note")
        await bot.say(CHANNEL, "alice again", thread_ts=ts)
        await bot.replies(CHANNEL, ts, 2)
    finally:
        await stop(bot)
    assert [n["user"] for n in slack.ephemerals] == ["U0BOB"]
    assert len(model_requests(openai_emu)) == 2
    assert "bob chimes in" not in str([r.json for r in model_requests(openai_emu)])


async def test_slack_connect_user_is_refused_by_default(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, bot: BotUnderTest
) -> None:
    _, events = slack.user_says(CHANNEL, user="U0ALICE", text=f"{BOT} hello from another org")
    for event in events:
        event["user_team"] = "T0PARTNER"
        envelope = bot.events.envelope(event)
        envelope["is_ext_shared_channel"] = True
        status, _ = await bot.events.post(envelope)
        assert status == 200
    await slack.wait_for(lambda: slack.ephemerals, what="a private note")
    assert "members of this workspace's organisation" in slack.ephemerals[0]["text"]
    assert not model_requests(openai_emu)


async def test_channel_switched_off_in_the_file_refuses_mentions(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, bot_env_vars: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "threadbridge.yml"
    config.write_text(f"channels:\n  {CHANNEL}:\n    enabled: false\n")
    bot = await start_in_process(slack, {**bot_env_vars, "THREADBRIDGE_CONFIG": str(config)})
    try:
        await bot.say(CHANNEL, f"{BOT} are you there?")
        await slack.wait_for(lambda: slack.ephemerals, what="a private note")
        ts = await bot.say("C0OTHER", f"{BOT} and here?")
        await bot.replies("C0OTHER", ts, 1)
    finally:
        await stop(bot)
    assert "switched off in this channel" in slack.ephemerals[0]["text"]
    assert len(model_requests(openai_emu)) == 1


async def test_respond_to_mentions_ignores_plain_thread_replies(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, bot_env_vars: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "threadbridge.yml"
    config.write_text(f"channels:\n  {CHANNEL}:\n    respond_to: mentions\n")
    bot = await start_in_process(slack, {**bot_env_vars, "THREADBRIDGE_CONFIG": str(config)})
    try:
        ts = await bot.say(CHANNEL, f"{BOT} first")
        await bot.replies(CHANNEL, ts, 1)
        await bot.say(CHANNEL, "just chatting among ourselves", thread_ts=ts)
        await bot.say(CHANNEL, f"{BOT} now you", thread_ts=ts)
        replies = await bot.replies(CHANNEL, ts, 2)
    finally:
        await stop(bot)
    assert len(replies) == 2
    assert len(model_requests(openai_emu)) == 2
    assert "just chatting" not in str([r.json for r in model_requests(openai_emu)])
    assert not slack.ephemerals


async def test_guests_are_refused_when_the_file_says_so(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, bot_env_vars: dict[str, str], tmp_path: Path
) -> None:
    slack.add_user("U0GUEST", name="gus", display_name="Gus", guest=True)
    config = tmp_path / "threadbridge.yml"
    config.write_text("access:\n  guests: false\n")
    bot = await start_in_process(slack, {**bot_env_vars, "THREADBRIDGE_CONFIG": str(config)})
    try:
        await bot.say(CHANNEL, f"{BOT} guest here", user="U0GUEST")
        await slack.wait_for(lambda: slack.ephemerals, what="the guest's note")
        ts = await bot.say(CHANNEL, f"{BOT} member here")
        await bot.replies(CHANNEL, ts, 1)
    finally:
        await stop(bot)
    assert [n["user"] for n in slack.ephemerals] == ["U0GUEST"]
    assert "guest accounts" in slack.ephemerals[0]["text"]
    assert len(model_requests(openai_emu)) == 1


async def test_channel_rules_by_name_are_resolved_through_slack(
    slack: SlackEmulator, openai_emu: OpenAIEmulator, bot_env_vars: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "threadbridge.yml"
    # The emulator names a channel after its id, lower-cased.
    config.write_text('access:\n  channels:\n    allow: ["#c0open"]\n')
    bot = await start_in_process(slack, {**bot_env_vars, "THREADBRIDGE_CONFIG": str(config)})
    try:
        await bot.say("C0SHUT", f"{BOT} anyone?")
        await slack.wait_for(lambda: slack.ephemerals, what="the channel's note")
        ts = await bot.say("C0OPEN", f"{BOT} and here?")
        await bot.replies("C0OPEN", ts, 1)
    finally:
        await stop(bot)
    assert [n["channel"] for n in slack.ephemerals] == ["C0SHUT"]
    assert len(model_requests(openai_emu)) == 1
    assert {c["channel"] for c in slack.calls_to("conversations.info")} == {"C0SHUT", "C0OPEN"}
