"""ReplyStream: one assistant answer into one Slack thread, streamed as it is written.

Native chat streaming (chat.startStream/appendStream/stopStream) when Slack allows it;
otherwise a placeholder message updated at most about once a second. Long answers continue
in further messages (see render.MessageSplitter).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import TaskUpdateChunk
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bot.inbound import ThreadKey
from bot.slack.markup import neutralize
from bot.slack.render import (
    MessageSplitter,
    feedback_block,
    footnotes,
    markdown_blocks,
    stop_block,
    to_mrkdwn,
)

log = logging.getLogger(__name__)

UPDATE_INTERVAL_S = 1.0
# Streamed text goes out at most about once a second (or sooner when this much is waiting):
# the first words at once, then batched, so a long answer costs a few calls, not hundreds
# (chat.appendStream is rate-limited per workspace), and still reads as it is written.
STREAM_INTERVAL_S = 1.0
# One stream call carries at most 12,000 chars of markdown.
STREAM_CHUNK = 4_000

# Slack's answers to a stream its own Stop control already ended.
STOPPED_IN_SLACK = frozenset({"stopped_by_user", "message_not_in_streaming_state"})

OnStarted = Callable[[str], Awaitable[None]]
Blocks = Sequence[dict[str, object]]


async def _noop(ts: str) -> None:
    return None


class ReplyStream:
    """Streams one answer into a thread; call append() as text arrives, then finish() or fail()."""

    def __init__(
        self,
        client: AsyncWebClient,
        key: ThreadKey,
        *,
        recipient_user_id: str,
        native: bool = True,
        on_started: OnStarted = _noop,
        allowed_users: frozenset[str] = frozenset(),
        stop_button: bool = False,
    ) -> None:
        self._client = client
        self._key = key
        self._recipient = recipient_user_id
        self._native = native
        self._on_started = on_started
        self._splitter = MessageSplitter(allowed_users=allowed_users)
        self._stream: AsyncChatStream | None = None
        self._ts: str | None = None  # the message currently being written
        self._text = ""
        self._pending = ""  # streamed text not yet sent to Slack
        self._last_update = 0.0
        self._dirty = False
        self._tasks = True  # task chunks accepted so far
        # Our Stop button rides on the message while it is written (placeholder updates only).
        self._live_blocks: Blocks = [stop_block()] if stop_button else []
        self._halted = False  # Slack's own Stop ended the stream: the rest waits for the final edit
        self.posted: list[str] = []
        self.written = ""  # the whole answer as the assistant wrote it (what a stop keeps)
        self.finished = False  # finish() or fail() has closed the answer

    @property
    def started(self) -> bool:
        return self._ts is not None or self._stream is not None

    async def status(self, text: str) -> None:
        """Show what the assistant is doing; best effort, a status is never worth failing for."""
        try:
            await self._client.assistant_threads_setStatus(
                channel_id=self._key.channel_id,
                thread_ts=self._key.thread_ts,
                status=neutralize(text),
            )
        except SlackApiError as exc:
            log.debug("setStatus refused: %s", exc.response.get("error"))

    async def append(self, text: str, *, final: bool = False) -> None:
        self.written += text
        for piece in self._splitter.feed(text, final=final):
            if piece.new_message:
                await self._close_message("")
            if piece.text:
                await self._write(piece.text)

    async def finish(self, sources: list[str] | None = None) -> list[str]:
        """Close the answer (with numbered sources and feedback buttons); returns every ts posted."""
        await self.append("", final=True)
        tail = footnotes(sources or [])
        if not self.started:
            await self._write(tail or "_(no answer)_")
            tail = ""
        await self._close_message(tail, extra_blocks=[feedback_block()])
        self.finished = True
        return self.posted

    async def fail(self, message: str) -> list[str]:
        """End the answer with a clear error line (after whatever text already arrived)."""
        await self.append("", final=True)
        note = f"⚠️ {message}"
        if self.started:
            await self._close_message(f"\n\n{note}")
        else:
            await self._post_final(note)
        self.finished = True
        return self.posted

    async def stopped(self, note: str) -> list[str]:
        """End the answer where it stopped: what was written so far, then `note`."""
        await self.append("", final=True)
        if self.started:
            await self._close_message(f"\n\n{note}")
        else:
            await self._post_final(note)
        return self.posted

    async def _write(self, text: str) -> None:
        self._text += text
        if self._halted:
            return
        if self._native:
            self._pending += text
            due = time.monotonic() - self._last_update >= STREAM_INTERVAL_S
            if self._stream is not None and not due and len(self._pending) < STREAM_CHUNK:
                return
            if await self._stream_append():
                return
        await self._placeholder_update()

    async def _stream_append(self) -> bool:
        """Send the pending text via native streaming; False (and fall back for good) when
        Slack refuses to start a stream."""
        try:
            stream = await self._open_stream()
            text, self._pending = self._pending, ""
            for i in range(0, len(text), STREAM_CHUNK):
                await stream.append(markdown_text=text[i : i + STREAM_CHUNK])
                await self._note_stream_ts()
            self._last_update = time.monotonic()
            return True
        except SlackApiError as exc:
            if exc.response.get("error") in STOPPED_IN_SLACK and self._ts is not None:
                self._halted = True  # the stop reaches the turn in a moment
                return True
            if self._stream is not None and self._stream.ts is not None:
                raise
            log.info("native streaming refused (%s); using message updates", exc.response.get("error"))
            self._native = False
            self._stream = None
            self._pending = ""
            return False

    async def _open_stream(self) -> AsyncChatStream:
        if self._stream is None:
            self._stream = await self._client.chat_stream(
                channel=self._key.channel_id,
                thread_ts=self._key.thread_ts,
                recipient_team_id=self._key.team_id,
                recipient_user_id=self._recipient,
                buffer_size=1,  # the batching is ours (above): every append is sent
                task_display_mode="timeline",
            )
        return self._stream

    async def task(self, task_id: str, title: str, status: str) -> None:
        """A tool at work, as a task of the streaming answer; the status line without native streaming."""
        if self._native and self._tasks:
            try:
                stream = await self._open_stream()
                # Text still waiting for its batch goes first, in the same call: order is kept.
                text, self._pending = self._pending, ""
                chunk = TaskUpdateChunk(id=task_id, title=title, status=status)
                await stream.append(markdown_text=text or None, chunks=[chunk])
                await self._note_stream_ts()
                self._last_update = time.monotonic()
                return
            except SlackApiError as exc:
                # Tasks are decoration: a refusal must not cost the answer (nor its text).
                self._pending = text + self._pending
                log.info("task update refused (%s); using the status line", exc.response.get("error"))
                self._tasks = False
                if self._stream is not None and self._stream.ts is None:
                    self._stream = None
        if status == "in_progress":
            await self.status(f"{title[:1].lower()}{title[1:]}…")

    async def _note_stream_ts(self) -> None:
        if self._stream is not None and self._stream.ts and self._ts != self._stream.ts:
            self._ts = self._stream.ts
            self.posted.append(self._ts)
            await self._on_started(self._ts)

    async def _placeholder_update(self, *, force: bool = False, extra_blocks: Blocks = ()) -> None:
        if self._ts is None:
            resp = await self._client.chat_postMessage(
                channel=self._key.channel_id,
                thread_ts=self._key.thread_ts,
                text=to_mrkdwn(self._text) or "…",
                blocks=[*markdown_blocks(self._text), *self._live_blocks],
            )
            self._ts = str(resp["ts"])
            self.posted.append(self._ts)
            self._last_update = time.monotonic()
            self._dirty = False
            await self._on_started(self._ts)
            return
        self._dirty = True
        if force or time.monotonic() - self._last_update >= UPDATE_INTERVAL_S:
            await self._client.chat_update(
                channel=self._key.channel_id,
                ts=self._ts,
                text=to_mrkdwn(self._text),
                blocks=[*markdown_blocks(self._text), *(extra_blocks if force else self._live_blocks)],
            )
            self._last_update = time.monotonic()
            self._dirty = False

    async def _close_message(self, tail: str, *, extra_blocks: Blocks = ()) -> None:
        """Finish the message being written (adding `tail`); the next write starts a new one."""
        if self._stream is not None:
            pending, self._pending = self._pending, ""
            try:
                await self._stream.stop(
                    markdown_text=(pending + tail) or None, blocks=list(extra_blocks) or None
                )
                await self._note_stream_ts()
            except SlackApiError as exc:
                if self._stream.ts is not None and exc.response.get("error") in STOPPED_IN_SLACK:
                    await self._rewrite(self._stream.ts, tail, extra_blocks)
                elif self._stream.ts is not None:
                    raise
                else:
                    self._native = False
                    log.info("native streaming refused (%s); posting instead", exc.response.get("error"))
                    await self._post_final(self._text + tail, extra_blocks)
        elif self._ts is not None:
            self._text += tail
            await self._placeholder_update(force=True, extra_blocks=extra_blocks)
        elif tail:
            await self._post_final(tail, extra_blocks)
        self._stream = None
        self._ts = None
        self._text = ""
        self._last_update = 0.0
        self._halted = False

    async def _rewrite(self, ts: str, tail: str, extra_blocks: Blocks) -> None:
        """Finish a message whose stream Slack's Stop ended: one edit with everything written."""
        text = self._text + tail
        await self._client.chat_update(
            channel=self._key.channel_id,
            ts=ts,
            text=to_mrkdwn(text),
            blocks=[*markdown_blocks(text), *extra_blocks],
        )

    async def _post_final(self, markdown: str, extra_blocks: Blocks = ()) -> None:
        self.posted.append(await post_note(self._client, self._key, markdown, extra_blocks))


async def post_note(client: AsyncWebClient, key: ThreadKey, markdown: str, extra_blocks: Blocks = ()) -> str:
    """One finished message in the thread (notices about files, errors, confirmations)."""
    resp = await client.chat_postMessage(
        channel=key.channel_id,
        thread_ts=key.thread_ts,
        text=to_mrkdwn(markdown),
        blocks=[*markdown_blocks(markdown), *extra_blocks],
    )
    return str(resp["ts"])


async def discard_interrupted(client: AsyncWebClient, key: ThreadKey, ts: str) -> None:
    """Remove a half-written answer left by a worker that died, before answering again."""
    # It may not be streaming any more (or never was): deleting is what matters.
    with contextlib.suppress(SlackApiError):
        await client.chat_stopStream(channel=key.channel_id, ts=ts)
    try:
        await client.chat_delete(channel=key.channel_id, ts=ts)
    except SlackApiError as exc:
        log.warning("could not delete interrupted reply %s in %s: %s", ts, key, exc.response.get("error"))
