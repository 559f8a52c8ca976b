"""The Slack emulator must speak the protocol the real slack_sdk / slack_bolt clients use.

Every Web API test goes through ``AsyncWebClient``; the Events tests go through a real Bolt
app and slack_sdk's own signature verifier; Socket Mode goes through the SDK's aiohttp client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.emulators.slack import (
    EventSender,
    SlackEmulator,
    app_context_changed,
    app_home_opened,
    message_action,
    url_verification,
)

CHANNEL = "C0GENERAL"
DM = "D0ALICE"


@pytest.fixture
async def emu() -> AsyncIterator[SlackEmulator]:
    emulator = SlackEmulator()
    await emulator.start()
    emulator.add_user("U0ALICE", name="alice", display_name="Alice", real_name="Alice Liddell")
    yield emulator
    await emulator.stop()


@pytest.fixture
def client(emu: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)


async def _error_of(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value


# ---------------------------------------------------------------------------- auth & identity


async def test_auth_test_reports_the_bot_identity(emu: SlackEmulator, client: AsyncWebClient) -> None:
    response = await client.auth_test()
    assert response["user_id"] == "U0BOT"
    assert response["bot_id"] == "B0BOT"
    assert response["team_id"] == "T0TEAM"
    assert response["is_enterprise_install"] is False
    assert emu.calls[-1].method == "auth.test"
    assert emu.calls[-1].status == 200


async def test_wrong_missing_and_app_tokens_are_refused(emu: SlackEmulator) -> None:
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=emu.api_url)
    assert (await _error_of(wrong.auth_test())).response["error"] == "invalid_auth"
    anonymous = AsyncWebClient(base_url=emu.api_url)
    assert (await _error_of(anonymous.auth_test())).response["error"] == "not_authed"
    app_level = AsyncWebClient(token=emu.app_token, base_url=emu.api_url)
    error = await _error_of(app_level.chat_postMessage(channel=CHANNEL, text="hi"))
    assert error.response["error"] == "not_allowed_token_type"
    assert error.response.status_code == 200
    assert emu.calls_to("chat.postMessage") == []


async def test_token_may_come_as_a_form_param(emu: SlackEmulator) -> None:
    anonymous = AsyncWebClient(base_url=emu.api_url)
    await anonymous.api_call(
        "chat.postMessage", data={"token": emu.bot_token, "channel": CHANNEL, "text": "form body"}
    )
    call = emu.calls[-1]
    assert call.encoding == "form"
    assert call.args == {"channel": CHANNEL, "text": "form body"}
    assert call.ok


async def test_unknown_method(client: AsyncWebClient) -> None:
    error = await _error_of(client.api_call("chat.teleport", json={"channel": CHANNEL}))
    assert error.response["error"] == "unknown_method"


async def test_users_info(client: AsyncWebClient) -> None:
    user = (await client.users_info(user="U0ALICE"))["user"]
    assert user["name"] == "alice"
    assert user["real_name"] == "Alice Liddell"
    assert user["profile"]["display_name"] == "Alice"
    error = await _error_of(client.users_info(user="U0NOBODY"))
    assert error.response["error"] == "user_not_found"


async def test_conversations_info_knows_dms(client: AsyncWebClient) -> None:
    assert (await client.conversations_info(channel=DM))["channel"]["is_im"] is True
    assert (await client.conversations_info(channel=CHANNEL))["channel"]["is_channel"] is True
    error = await _error_of(client.conversations_info(channel="nope"))
    assert error.response["error"] == "channel_not_found"


# ---------------------------------------------------------------------------- messages


async def test_post_message_lands_in_the_thread(emu: SlackEmulator, client: AsyncWebClient) -> None:
    root, _ = emu.user_says(CHANNEL, user="U0ALICE", text="question")
    response = await client.chat_postMessage(
        channel=CHANNEL, thread_ts=root, text="answer", blocks=[{"type": "divider"}]
    )
    assert response["channel"] == CHANNEL
    assert response["message"]["bot_id"] == "B0BOT"
    assert emu.calls[-1].encoding == "json"
    thread = emu.thread(CHANNEL, root)
    assert [m["text"] for m in thread] == ["question", "answer"]
    assert thread[0]["reply_count"] == 1
    assert thread[1]["thread_ts"] == root
    assert thread[1]["blocks"] == [{"type": "divider"}]
    bot = emu.bot_messages(CHANNEL, root)
    assert [m["ts"] for m in bot] == [response["ts"]]
    assert float(response["ts"]) > float(root)
    assert emu.calls_to("chat.postMessage")[0]["thread_ts"] == root


async def test_reply_to_a_reply_is_filed_under_the_parent(emu: SlackEmulator, client: AsyncWebClient) -> None:
    root, _ = emu.user_says(CHANNEL, user="U0ALICE", text="root")
    reply, _ = emu.user_says(CHANNEL, user="U0ALICE", text="reply", thread_ts=root)
    await client.chat_postMessage(channel=CHANNEL, thread_ts=reply, text="bot")
    assert [m["text"] for m in emu.thread(CHANNEL, root)] == ["root", "reply", "bot"]


# A markdown_text-only post is legitimate but makes the SDK warn about the missing `text`.
@pytest.mark.filterwarnings("ignore::UserWarning")
async def test_message_content_errors(client: AsyncWebClient) -> None:
    too_long = await _error_of(client.chat_postMessage(channel=CHANNEL, text="x" * 40_001))
    assert too_long.response["error"] == "msg_too_long"
    empty = await _error_of(client.chat_postMessage(channel=CHANNEL, text=""))
    assert empty.response["error"] == "no_text"
    markdown = await _error_of(client.chat_postMessage(channel=CHANNEL, markdown_text="y" * 12_001))
    assert markdown.response["error"] == "msg_too_long"
    conflict = await _error_of(client.chat_postMessage(channel=CHANNEL, text="a", markdown_text="**a**"))
    assert conflict.response["error"] == "markdown_text_conflict"
    ok = await client.chat_postMessage(channel=CHANNEL, markdown_text="**fine**")
    assert ok["message"]["text"] == "**fine**"


async def test_block_limits(client: AsyncWebClient) -> None:
    halves = [{"type": "markdown", "text": "m" * 6_001}, {"type": "markdown", "text": "m" * 6_000}]
    split = await _error_of(client.chat_postMessage(channel=CHANNEL, text="t", blocks=halves))
    assert split.response["error"] == "msg_blocks_too_long"
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3_001}}
    long_section = await _error_of(client.chat_postMessage(channel=CHANNEL, text="t", blocks=[section]))
    assert long_section.response["error"] == "invalid_blocks"
    many = [{"type": "divider"}] * 51
    too_many = await _error_of(client.chat_postMessage(channel=CHANNEL, text="t", blocks=many))
    assert too_many.response["error"] == "invalid_blocks"
    fits = [{"type": "markdown", "text": "m" * 6_000}, {"type": "markdown", "text": "m" * 6_000}]
    assert (await client.chat_postMessage(channel=CHANNEL, text="t", blocks=fits))["ok"]


async def test_update_and_delete(emu: SlackEmulator, client: AsyncWebClient) -> None:
    root, _ = emu.user_says(CHANNEL, user="U0ALICE", text="q")
    posted = await client.chat_postMessage(
        channel=CHANNEL, thread_ts=root, text="draft", blocks=[{"type": "divider"}]
    )
    await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="final")
    (reply,) = emu.bot_messages(CHANNEL, root)
    assert reply["text"] == "final"
    assert "blocks" not in reply  # documented: text without blocks drops the old blocks
    missing = await _error_of(client.chat_update(channel=CHANNEL, ts="1.000001", text="x"))
    assert missing.response["error"] == "message_not_found"
    not_ours = await _error_of(client.chat_update(channel=CHANNEL, ts=root, text="x"))
    assert not_ours.response["error"] == "cant_update_message"
    await client.chat_delete(channel=CHANNEL, ts=posted["ts"])
    assert emu.bot_messages(CHANNEL, root) == []
    assert "reply_count" not in emu.thread(CHANNEL, root)[0]


async def test_post_ephemeral_is_recorded_outside_the_thread(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    root, _ = emu.user_says(CHANNEL, user="U0ALICE", text="q")
    response = await client.chat_postEphemeral(channel=CHANNEL, user="U0ALICE", text="psst", thread_ts=root)
    assert response["message_ts"]
    assert emu.ephemerals[0]["text"] == "psst"
    assert emu.bot_messages(CHANNEL, root) == []


async def test_answered_threads_are_those_with_a_finished_bot_message(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    posted, streaming, silent = (emu.user_says(DM, user="U0ALICE", text=t)[0] for t in "abc")
    await client.chat_postMessage(channel=DM, thread_ts=posted, text="done")
    streamer = await client.chat_stream(channel=DM, thread_ts=streaming, buffer_size=1)
    await streamer.append(markdown_text="still writing")
    assert emu.answered_threads(DM) == {posted}
    await streamer.stop()
    assert emu.answered_threads(DM) == {posted, streaming} and silent not in emu.answered_threads(DM)


# ---------------------------------------------------------------------------- streaming


async def test_chat_stream_helper_start_append_stop(emu: SlackEmulator, client: AsyncWebClient) -> None:
    root, _ = emu.user_says(DM, user="U0ALICE", text="tell me")
    streamer = await client.chat_stream(channel=DM, thread_ts=root, buffer_size=5)
    await streamer.append(markdown_text="Hello")  # reaches buffer_size: chat.startStream
    await streamer.append(markdown_text=", wor")  # chat.appendStream
    (live,) = emu.bot_messages(DM, root)
    assert live["streaming"] is True
    assert live["text"] == "Hello, wor"
    await streamer.stop(markdown_text="ld!", blocks=[{"type": "divider"}])
    (final,) = emu.bot_messages(DM, root)
    assert final["text"] == "Hello, world!"
    assert final["streaming"] is False
    assert final["blocks"] == [{"type": "divider"}]
    assert [c.method for c in emu.calls if c.method.startswith("chat.")] == [
        "chat.startStream",
        "chat.appendStream",
        "chat.stopStream",
    ]
    assert all(c.encoding == "json" for c in emu.calls if c.method.startswith("chat."))
    start = emu.calls_to("chat.startStream")[0]
    assert start["chunks"] == [{"type": "markdown_text", "text": "Hello"}]


async def test_stream_in_a_channel_needs_recipients(emu: SlackEmulator, client: AsyncWebClient) -> None:
    root, _ = emu.user_says(CHANNEL, user="U0ALICE", text="<@U0BOT> hi")
    no_team = await _error_of(client.chat_startStream(channel=CHANNEL, thread_ts=root, markdown_text="a"))
    assert no_team.response["error"] == "missing_recipient_team_id"
    no_user = await _error_of(
        client.chat_startStream(
            channel=CHANNEL, thread_ts=root, recipient_team_id="T0TEAM", markdown_text="a"
        )
    )
    assert no_user.response["error"] == "missing_recipient_user_id"
    started = await client.chat_startStream(
        channel=CHANNEL,
        thread_ts=root,
        recipient_team_id="T0TEAM",
        recipient_user_id="U0ALICE",
        markdown_text="a",
    )
    assert emu.bot_messages(CHANNEL, root)[0]["ts"] == started["ts"]


async def test_stream_state_errors(emu: SlackEmulator, client: AsyncWebClient) -> None:
    root, _ = emu.user_says(DM, user="U0ALICE", text="q")
    ts = (await client.chat_startStream(channel=DM, thread_ts=root, markdown_text="a"))["ts"]
    editing = await _error_of(client.chat_update(channel=DM, ts=ts, text="edit"))
    assert editing.response["error"] == "streaming_state_conflict"
    mismatch = await _error_of(
        client.chat_appendStream(channel=DM, ts=ts, chunks=[{"type": "markdown_text", "text": "b"}])
    )
    assert mismatch.response["error"] == "streaming_mode_mismatch"
    huge = await _error_of(client.chat_appendStream(channel=DM, ts=ts, markdown_text="z" * 12_001))
    assert huge.response["error"] == "msg_too_long"
    unknown = await _error_of(client.chat_appendStream(channel=DM, ts="1.000009", markdown_text="b"))
    assert unknown.response["error"] == "message_not_found"
    await client.chat_stopStream(channel=DM, ts=ts, markdown_text="!")
    after = await _error_of(client.chat_appendStream(channel=DM, ts=ts, markdown_text="late"))
    assert after.response["error"] == "message_not_in_streaming_state"
    again = await _error_of(client.chat_stopStream(channel=DM, ts=ts))
    assert again.response["error"] == "message_not_in_streaming_state"
    await client.chat_update(channel=DM, ts=ts, text="edited after stop")
    assert emu.bot_messages(DM, root)[0]["text"] == "edited after stop"


async def test_stream_ended_by_the_reader(emu: SlackEmulator, client: AsyncWebClient) -> None:
    root, _ = emu.user_says(DM, user="U0ALICE", text="q")
    ts = (await client.chat_startStream(channel=DM, thread_ts=root, markdown_text="a"))["ts"]
    emu.end_stream(DM, ts, by_user=True)
    error = await _error_of(client.chat_appendStream(channel=DM, ts=ts, markdown_text="b"))
    assert error.response["error"] == "stopped_by_user"


async def test_streaming_disabled_forces_the_fallback(emu: SlackEmulator, client: AsyncWebClient) -> None:
    emu.streaming_enabled = False
    root, _ = emu.user_says(DM, user="U0ALICE", text="q")
    error = await _error_of(client.chat_startStream(channel=DM, thread_ts=root, markdown_text="a"))
    assert error.response["error"] == "channel_type_not_supported"
    assert emu.bot_messages(DM, root) == []
    posted = await client.chat_postMessage(channel=DM, thread_ts=root, text="...")
    await client.chat_update(channel=DM, ts=posted["ts"], text="whole answer")
    assert [m["text"] for m in emu.bot_messages(DM, root)] == ["whole answer"]


# ---------------------------------------------------------------------------- history


async def test_conversations_replies_paginates_with_cursors(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    root = emu.add_message(CHANNEL, user="U0ALICE", text="m0")
    for i in range(1, 5):
        emu.add_message(CHANNEL, user="U0ALICE" if i % 2 else "U0BOT", text=f"m{i}", thread_ts=root)
    first = await client.conversations_replies(channel=CHANNEL, ts=root, limit=2)
    assert [m["text"] for m in first["messages"]] == ["m0", "m1"]
    assert first["has_more"] is True
    cursor = first["response_metadata"]["next_cursor"]
    assert cursor
    texts: list[str] = []
    async for page in await client.conversations_replies(channel=CHANNEL, ts=root, limit=2):
        texts.extend(m["text"] for m in page["messages"])
    assert texts == ["m0", "m1", "m2", "m3", "m4"]
    last = await client.conversations_replies(channel=CHANNEL, ts=root, limit=10)
    assert last["has_more"] is False
    assert last["response_metadata"]["next_cursor"] == ""
    assert last["messages"][2]["bot_id"] == "B0BOT"
    assert emu.calls[-1].encoding == "query"
    bad = await _error_of(client.conversations_replies(channel=CHANNEL, ts=root, cursor="garbage!"))
    assert bad.response["error"] == "invalid_cursor"
    missing = await _error_of(client.conversations_replies(channel=CHANNEL, ts="1.000001"))
    assert missing.response["error"] == "thread_not_found"


async def test_seeded_ts_is_kept_and_later_ts_stay_monotonic(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    seeded = emu.add_message(CHANNEL, user="U0ALICE", text="old", ts="1800000000.000500")
    assert seeded == "1800000000.000500"
    posted = await client.chat_postMessage(channel=CHANNEL, thread_ts=seeded, text="new")
    assert posted["ts"] > seeded
    assert len(posted["ts"].split(".")[1]) == 6
    with pytest.raises(ValueError):
        emu.add_message(CHANNEL, user="U0ALICE", text="dup", ts=seeded)


# ---------------------------------------------------------------------------- events


async def test_user_says_builds_message_and_mention_events(emu: SlackEmulator) -> None:
    ts, events = emu.user_says(CHANNEL, user="U0ALICE", text="<@U0BOT> summarise")
    assert [e["type"] for e in events] == ["message", "app_mention"]
    message, mention = events
    assert message["channel_type"] == "channel"
    assert message["ts"] == mention["ts"] == ts
    assert message["blocks"][0]["elements"][0]["elements"][0] == {"type": "user", "user_id": "U0BOT"}
    assert "thread_ts" not in mention

    reply_ts, reply_events = emu.user_says(CHANNEL, user="U0ALICE", text="<@U0BOT> more", thread_ts=ts)
    assert all(e["thread_ts"] == ts for e in reply_events)
    assert reply_events[0]["parent_user_id"] == "U0ALICE"
    assert [m["ts"] for m in emu.thread(CHANNEL, ts)] == [ts, reply_ts]

    _, dm_events = emu.user_says(DM, user="U0ALICE", text="<@U0BOT> in a DM")
    assert [e["type"] for e in dm_events] == ["message"]
    assert dm_events[0]["channel_type"] == "im"

    _, private = emu.user_says("G0PRIVATE", user="U0ALICE", text="plain")
    assert private[0]["channel_type"] == "group"


async def test_user_says_with_files(emu: SlackEmulator) -> None:
    shared = emu.host_file("notes.txt", b"hello", mimetype="text/plain", filetype="text")
    _, events = emu.user_says(CHANNEL, user="U0ALICE", text="<@U0BOT> read this", files=[shared])
    message, mention = events
    assert message["subtype"] == "file_share"
    assert message["files"] == [shared]
    assert mention["files"] == [shared]
    assert emu.thread(CHANNEL, message["ts"])[0]["files"][0]["id"] == shared["id"]


async def test_event_sender_signs_like_slack(emu: SlackEmulator) -> None:
    received: list[tuple[bytes, dict[str, str]]] = []

    async def capture(request: web.Request) -> web.Response:
        received.append((await request.read(), dict(request.headers)))
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/slack/events", capture)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sender = EventSender(f"http://127.0.0.1:{port}/slack/events", emu.signing_secret)
    try:
        _, events = emu.user_says(DM, user="U0ALICE", text="hi")
        status, _ = await sender.send(events[0], event_id="Ev0001", retry_num=1, retry_reason="http_timeout")
        assert status == 200
        await sender.post(url_verification("c"), signature="v0=forged")
    finally:
        await sender.close()
        await runner.cleanup()

    verifier = SignatureVerifier(emu.signing_secret)
    body, headers = received[0]
    assert verifier.is_valid_request(body, headers)
    assert headers["X-Slack-Retry-Num"] == "1"
    assert headers["X-Slack-Retry-Reason"] == "http_timeout"
    envelope = json.loads(body)
    assert envelope["type"] == "event_callback"
    assert envelope["event_id"] == "Ev0001"
    assert envelope["authorizations"][0]["user_id"] == "U0BOT"
    assert envelope["event"]["channel_type"] == "im"
    forged_body, forged_headers = received[1]
    assert not verifier.is_valid_request(forged_body, forged_headers)


@pytest.fixture
async def bolt_url(emu: SlackEmulator) -> AsyncIterator[str]:
    """A real Bolt app, served over HTTP, whose Web API client points at the emulator."""
    app = AsyncApp(
        client=AsyncWebClient(token=emu.bot_token, base_url=emu.api_url),
        signing_secret=emu.signing_secret,
    )

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: Any) -> None:
        await say(text=f"heard: {event['text']}", thread_ts=event.get("thread_ts") or event["ts"])

    @app.event("message")
    async def on_message(event: dict[str, Any], say: Any) -> None:
        if event.get("channel_type") == "im":
            files = ",".join(f["name"] for f in event.get("files", []))
            await say(text=f"dm: {event['text']} [{files}]", thread_ts=event["ts"])

    @app.event("app_home_opened")
    async def on_home(event: dict[str, Any]) -> None:
        return None

    runner = web.AppRunner(app.web_app(path="/slack/events"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    await runner.cleanup()


async def test_bolt_accepts_emulated_events_and_replies_through_the_emulator(
    emu: SlackEmulator, bolt_url: str
) -> None:
    sender = EventSender(bolt_url, emu.signing_secret)
    try:
        status, body = await sender.post(url_verification("xyz"))
        assert (status, json.loads(body)) == (200, {"challenge": "xyz"})

        root, events = emu.user_says(CHANNEL, user="U0ALICE", text="<@U0BOT> ping")
        for event in events:
            status, _ = await sender.send(event)
            assert status == 200
        replies = await emu.wait_for(lambda: emu.bot_messages(CHANNEL, root), what="mention reply")
        assert replies[0]["text"] == "heard: <@U0BOT> ping"
        assert emu.calls_to("auth.test")  # Bolt authorised the request against the emulator

        shared = emu.host_file("a.pdf", b"%PDF", mimetype="application/pdf", filetype="pdf")
        dm_root, dm_events = emu.user_says(DM, user="U0ALICE", text="see file", files=[shared])
        await sender.send(dm_events[0])
        dm_replies = await emu.wait_for(lambda: emu.bot_messages(DM, dm_root), what="DM reply")
        assert dm_replies[0]["text"] == "dm: see file [a.pdf]"

        status, _ = await sender.send(app_home_opened("U0ALICE", DM))
        assert status == 200

        stale, _ = await sender.send(events[0], timestamp=1)
        assert stale == 401
        forged, _ = await sender.send(events[0], signature="v0=0000")
        assert forged == 401
        unsigned, _ = await sender.send(events[0], sign=False)
        assert unsigned == 401
    finally:
        await sender.close()


# ---------------------------------------------------------------------------- files


async def test_files_upload_v2_into_a_thread(emu: SlackEmulator, client: AsyncWebClient) -> None:
    root, _ = emu.user_says(CHANNEL, user="U0ALICE", text="make a report")
    response = await client.files_upload_v2(
        channel=CHANNEL,
        thread_ts=root,
        filename="report.csv",
        title="Report",
        content=b"a,b\n1,2\n",
        initial_comment="here you go",
    )
    file_id = response["file"]["id"]
    assert [c.method for c in emu.calls] == ["files.getUploadURLExternal", "files.completeUploadExternal"]
    assert emu.calls_to("files.completeUploadExternal")[0]["files"] == [{"id": file_id, "title": "Report"}]
    (upload,) = emu.uploads
    assert upload["content"] == b"a,b\n1,2\n"
    assert (upload["filename"], upload["title"]) == ("report.csv", "Report")
    assert (upload["channel"], upload["thread_ts"]) == (CHANNEL, root)
    (message,) = emu.bot_messages(CHANNEL, root)
    assert message["text"] == "here you go"
    assert message["files"][0]["id"] == file_id
    info = (await client.files_info(file=file_id))["file"]
    assert info["size"] == 8
    assert info["mimetype"] == "text/csv"


async def test_complete_upload_without_the_bytes_is_refused(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    ticket = await client.files_getUploadURLExternal(filename="x.txt", length=3)
    error = await _error_of(
        client.files_completeUploadExternal(files=[{"id": ticket["file_id"]}], channel_id=CHANNEL)
    )
    assert error.response["error"] == "file_not_found"
    zero = await _error_of(client.files_getUploadURLExternal(filename="x.txt", length=0))
    assert zero.response["error"] == "missing_argument"
    assert emu.uploads == []


async def test_file_download_needs_the_bot_token(emu: SlackEmulator) -> None:
    shared = emu.host_file("photo.png", b"\x89PNG\r\n", mimetype="image/png", filetype="png")
    assert shared["url_private_download"].startswith(emu.base_url)
    assert shared["url_private_download"].endswith(f"/files-pri/T0TEAM-{shared['id']}/download/photo.png")
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {emu.bot_token}"}
        async with session.get(shared["url_private_download"], headers=headers) as response:
            assert response.status == 200
            assert response.content_type == "image/png"
            assert response.headers["Content-Length"] == "6"
            assert await response.read() == b"\x89PNG\r\n"
        async with session.get(shared["url_private"]) as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            assert b"Sign in" in await response.read()
        bad = {"Authorization": "Bearer xoxb-wrong"}
        async with session.get(shared["url_private_download"], headers=bad) as response:
            assert response.content_type == "text/html"
    assert emu.downloads[0]["file_id"] == shared["id"]
    assert [d["authorized"] for d in emu.downloads] == [True, False, False]


async def test_declared_size_and_check_file_info(emu: SlackEmulator, client: AsyncWebClient) -> None:
    big = emu.host_file(
        "big.bin", b"tiny", mimetype="application/octet-stream", filetype="binary", declared_size=50_000_000
    )
    assert big["size"] == 50_000_000
    stub = emu.host_file(
        "c.txt", b"connect", mimetype="text/plain", filetype="text", file_access="check_file_info"
    )
    assert stub == {"id": stub["id"], "file_access": "check_file_info"}
    full = (await client.files_info(file=stub["id"]))["file"]
    assert full["name"] == "c.txt"
    assert full["url_private_download"].startswith(emu.base_url)
    error = await _error_of(client.files_info(file="F0MISSING"))
    assert error.response["error"] == "file_not_found"


# ---------------------------------------------------------------------------- rate limits


async def test_rate_limit_is_retried_by_the_sdk_handler(emu: SlackEmulator) -> None:
    client = AsyncWebClient(
        token=emu.bot_token,
        base_url=emu.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    emu.fail_next("chat.postMessage", retry_after=1)
    response = await client.chat_postMessage(channel=CHANNEL, text="eventually")
    assert response["ok"] is True
    assert [(c.method, c.status, c.error) for c in emu.calls] == [
        ("chat.postMessage", 429, "ratelimited"),
        ("chat.postMessage", 200, None),
    ]
    assert len(emu.calls_to("chat.postMessage")) == 1


async def test_rate_limit_without_a_handler_surfaces_retry_after(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    emu.fail_next("chat.update", retry_after=7, times=2)
    for _ in range(2):
        error = await _error_of(client.chat_update(channel=CHANNEL, ts="1.000001", text="x"))
        assert error.response.status_code == 429
        assert error.response.headers["Retry-After"] == "7"
        assert error.response["error"] == "ratelimited"
    later = await _error_of(client.chat_update(channel=CHANNEL, ts="1.000001", text="x"))
    assert later.response["error"] == "message_not_found"


async def test_fail_next_other_errors(emu: SlackEmulator, client: AsyncWebClient) -> None:
    emu.fail_next("users.info", error="fatal_error", status=500, retry_after=None)
    error = await _error_of(client.users_info(user="U0ALICE"))
    assert error.response.status_code == 500
    assert "Retry-After" not in error.response.headers
    assert (await client.users_info(user="U0ALICE"))["user"]["id"] == "U0ALICE"


async def test_outage_fails_every_method_until_it_is_over(emu: SlackEmulator, client: AsyncWebClient) -> None:
    emu.outage(60)
    assert emu.down
    for call in (client.auth_test(), client.chat_postMessage(channel=CHANNEL, text="x")):
        error = await _error_of(call)
        assert error.response.status_code == 500
        assert error.response["error"] == "internal_error"
    emu.outage(0)  # Slack is back
    assert not emu.down
    assert (await client.chat_postMessage(channel=CHANNEL, text="back"))["ok"] is True


# ---------------------------------------------------------------------------- assistant & reactions


async def test_assistant_thread_methods(emu: SlackEmulator, client: AsyncWebClient) -> None:
    root, _ = emu.user_says(DM, user="U0ALICE", text="q")
    await client.assistant_threads_setStatus(
        channel_id=DM, thread_ts=root, status="is thinking...", loading_messages=["Reading", "Writing"]
    )
    assert emu.status(DM, root) == "is thinking..."
    assert emu.calls_to("assistant.threads.setStatus")[0]["loading_messages"] == ["Reading", "Writing"]
    await client.assistant_threads_setSuggestedPrompts(
        channel_id=DM, thread_ts=root, title="Try", prompts=[{"title": "Sum", "message": "Summarise"}]
    )
    await client.assistant_threads_setTitle(channel_id=DM, thread_ts=root, title="Questions")
    assert emu.calls_to("assistant.threads.setTitle")[0]["title"] == "Questions"
    await client.chat_postMessage(channel=DM, thread_ts=root, text="answer")
    assert emu.status(DM, root) == ""  # a reply clears the status, as in Slack
    bad = await _error_of(client.assistant_threads_setSuggestedPrompts(channel_id=DM, prompts=[]))
    assert bad.response["error"] == "invalid_arguments"


async def test_reactions(emu: SlackEmulator, client: AsyncWebClient) -> None:
    root, _ = emu.user_says(CHANNEL, user="U0ALICE", text="q")
    await client.reactions_add(channel=CHANNEL, timestamp=root, name="eyes")
    assert emu.thread(CHANNEL, root)[0]["reactions"] == [{"name": "eyes", "users": ["U0BOT"], "count": 1}]
    again = await _error_of(client.reactions_add(channel=CHANNEL, timestamp=root, name="eyes"))
    assert again.response["error"] == "already_reacted"
    await client.reactions_remove(channel=CHANNEL, timestamp=root, name="eyes")
    assert "reactions" not in emu.thread(CHANNEL, root)[0]
    gone = await _error_of(client.reactions_remove(channel=CHANNEL, timestamp=root, name="eyes"))
    assert gone.response["error"] == "no_reaction"
    missing = await _error_of(client.reactions_add(channel=CHANNEL, timestamp="1.000001", name="eyes"))
    assert missing.response["error"] == "message_not_found"


# ---------------------------------------------------------------------------- waiting


async def test_wait_for_wakes_on_api_calls(emu: SlackEmulator, client: AsyncWebClient) -> None:
    root, _ = emu.user_says(CHANNEL, user="U0ALICE", text="q")
    waiter = asyncio.create_task(
        emu.wait_for(lambda: emu.bot_messages(CHANNEL, root), timeout=5, what="reply")
    )
    await asyncio.sleep(0)  # let the waiter park on the change event before anything happens
    assert not waiter.done()
    await client.chat_postMessage(channel=CHANNEL, thread_ts=root, text="done")
    replies = await waiter
    assert replies[0]["text"] == "done"


async def test_wait_for_times_out_with_the_call_log(emu: SlackEmulator, client: AsyncWebClient) -> None:
    await client.auth_test()
    with pytest.raises(AssertionError, match=r"timed out waiting for never; last calls: auth.test -> 200 ok"):
        await emu.wait_for(lambda: False, timeout=0.05, what="never")


# ---------------------------------------------------------------------------- socket mode


async def test_socket_mode_round_trip(emu: SlackEmulator) -> None:
    received: list[SocketModeRequest] = []

    async def ack(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))

    wrong = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)
    refused = await _error_of(wrong.apps_connections_open(app_token=emu.bot_token))
    assert refused.response["error"] == "not_allowed_token_type"

    socket_client = SocketModeClient(
        app_token=emu.app_token,
        web_client=AsyncWebClient(base_url=emu.api_url),
        auto_reconnect_enabled=False,
    )
    socket_client.socket_mode_request_listeners.append(ack)
    try:
        await socket_client.connect()
        _, events = emu.user_says(DM, user="U0ALICE", text="over the socket")
        payload = EventSender("unused", emu.signing_secret).envelope(events[0], event_id="Ev0SOCK")
        reply = await emu.socket_send(payload)
    finally:
        await socket_client.close()
    assert reply["envelope_id"] == received[0].envelope_id
    assert received[0].type == "events_api"
    assert received[0].payload["event_id"] == "Ev0SOCK"
    assert received[0].payload["event"]["text"] == "over the socket"
    assert emu.calls_to("apps.connections.open") == [{}]


# ---------------------------------------------------------------------------- agent view, shortcuts


async def test_agent_session_rename_needs_an_agent_app_and_a_thread(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    refused = await _error_of(client.agents_sessions_rename(channel_id=DM, thread_ts="1.0", title="Plans"))
    assert refused.response["error"] == "not_authorized"
    emu.agent_sessions = True
    assert (await client.agents_sessions_rename(channel_id=DM, thread_ts="1.0", title="Plans"))["ok"]
    missing = await _error_of(client.agents_sessions_rename(channel_id=DM, title="Plans"))
    assert missing.response["error"] == "invalid_arguments"


async def test_bolt_takes_the_emulated_message_shortcut_and_context_event(emu: SlackEmulator) -> None:
    app = AsyncApp(
        client=AsyncWebClient(token=emu.bot_token, base_url=emu.api_url), signing_secret=emu.signing_secret
    )
    got: list[dict[str, Any]] = []

    @app.shortcut("ask")
    async def on_shortcut(ack: Any, shortcut: dict[str, Any]) -> None:
        await ack()
        got.append(shortcut)

    @app.event("app_context_changed")
    async def on_context(event: dict[str, Any]) -> None:
        got.append(event)

    runner = web.AppRunner(app.web_app(path="/slack/events"))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sender = EventSender(f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events", emu.signing_secret)
    try:
        ts = emu.add_message(CHANNEL, user="U0ALICE", text="look at this")
        message = emu.message(CHANNEL, ts)
        assert message is not None
        payload = message_action("ask", user="U0ALICE", channel=CHANNEL, message=message)
        assert (await sender.interact(payload))[0] == 200
        entities = [{"type": "slack#/types/channel_id", "value": CHANNEL}]
        assert (await sender.send(app_context_changed("U0ALICE", DM, entities)))[0] == 200
    finally:
        await sender.close()
        await runner.cleanup()
    shortcut, context = got
    assert shortcut["type"] == "message_action" and shortcut["message"]["ts"] == ts
    assert context["context"]["entities"][0]["value"] == CHANNEL


# ---------------------------------------------------------------------------- agent sessions


async def test_agent_session_status_is_set_and_checked(emu: SlackEmulator, client: AsyncWebClient) -> None:
    emu.agent_sessions = True
    root = emu.add_message(DM, user="U0ALICE", text="hi")
    await client.agents_sessions_setStatus(channel_id=DM, thread_ts=root, status="processing")
    assert emu.session_status(DM, root) == "processing"
    await client.agents_sessions_rename(channel_id=DM, thread_ts=root, title="A chat")
    bad = await _error_of(client.agents_sessions_setStatus(channel_id=DM, thread_ts=root, status="thinking"))
    assert bad.response["error"] == "invalid_arguments"
    emu.agent_sessions = False
    refused = await _error_of(
        client.agents_sessions_setStatus(channel_id=DM, thread_ts=root, status="active")
    )
    assert refused.response["error"] == "not_authorized"


async def test_slack_stop_ends_the_apps_streams_and_stop_stream_sets_the_session(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    emu.agent_sessions = True
    root = emu.add_message(DM, user="U0ALICE", text="hi")
    await client.agents_sessions_setStatus(channel_id=DM, thread_ts=root, status="processing")
    started = await client.chat_startStream(channel=DM, thread_ts=root, markdown_text="half")
    event = emu.user_stops(DM, root, user="U0ALICE")
    assert event["type"] == "agent_session_stopped" and event["streaming_message_ts"] == [started["ts"]]
    assert emu.session_status(DM, root) == "processing", "Slack leaves moving out of processing to the app"
    appended = await _error_of(client.chat_appendStream(channel=DM, ts=started["ts"], markdown_text="more"))
    assert appended.response["error"] == "stopped_by_user"
    other = await client.chat_startStream(channel=DM, thread_ts=root, markdown_text="again")
    await client.chat_stopStream(channel=DM, ts=other["ts"], session_status="active")
    assert emu.session_status(DM, root) == "active"
