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
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import TaskUpdateChunk
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bot.inbound import ThreadKey
from bot.slack import outage
from bot.slack.answers import answer_metadata
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
Metadata = dict[str, Any] | None


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
        answers: Sequence[str] = (),
        stop_button: bool = False,
    ) -> None:
        self._client = client
        # Written on the reply's last message when it is finished (see slack/answers.py).
        self._metadata = answer_metadata(answers) if answers else None
        self._key = key
        self._recipient = recipient_user_id
        self._native = native
        self._on_started = on_started
        self._splitter = MessageSplitter(allowed_users=allowed_users)
        self._stream: AsyncChatStream | None = None
        self._ts: str | None = None  # the message currently being written
        self._text = ""
        self._pending = ""  # streamed text not yet sent to Slack
        # Text not yet through the splitter: cut and written when a write is due, not per delta.
        self._unsplit: list[str] = []
        self._unsplit_size = 0
        self._last_update = 0.0
        self._dirty = False
        self._tasks = True  # task chunks accepted so far
        # Slack stayed unavailable while the current message was being written: it is no
        # longer written to, and is replaced by a complete new message when it closes.
        self._broken = False
        # Our Stop button rides on the message while it is written (placeholder updates only).
        self._live_blocks: Blocks = [stop_block()] if stop_button else []
        self._halted = False  # Slack's own Stop ended the stream: the rest waits for the final edit
        self.posted: list[str] = []
        self.written = ""  # the whole answer as the assistant wrote it (what a stop keeps)
        self.finished = False  # the whole answer is in Slack, closed (finished, failed or stopped)

    @property
    def started(self) -> bool:
        return self._ts is not None or self._stream is not None

    async def status(self, text: str) -> None:
        """Show what the assistant is doing; best effort, a status is never worth failing for."""
        with outage.brief():
            await self._set_status(text)

    async def begin(self, text: str) -> None:
        """The turn's first status, which also checks that Slack is up before the model is asked:
        raises SlackUnavailable when Slack stays down for the whole retry deadline."""
        if await self._set_status(text) is not None:
            raise outage.SlackUnavailable("Slack did not take the turn's first status")

    async def _set_status(self, text: str) -> BaseException | None:
        """Returns the failure when Slack was unavailable (a refusal is only logged)."""
        try:
            await self._client.assistant_threads_setStatus(
                channel_id=self._key.channel_id,
                thread_ts=self._key.thread_ts,
                status=neutralize(text),
            )
        except Exception as exc:
            if outage.unavailable(exc):
                return exc
            if not isinstance(exc, SlackApiError):
                raise
            log.debug("setStatus refused: %s", exc.response.get("error"))
        return None

    async def append(self, text: str, *, final: bool = False) -> None:
        self.written += text
        self._unsplit.append(text)
        self._unsplit_size += len(text)
        if final or not self.started or self._due() or self._unsplit_size >= STREAM_CHUNK:
            await self._drain(final=final)

    def _due(self) -> bool:
        interval = STREAM_INTERVAL_S if self._native else UPDATE_INTERVAL_S
        return time.monotonic() - self._last_update >= interval

    async def _drain(self, *, final: bool = False) -> None:
        """Everything appended so far, through the splitter and on to Slack's messages."""
        text = "".join(self._unsplit)
        self._unsplit.clear()
        self._unsplit_size = 0
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
        await self._close_message(tail, extra_blocks=[feedback_block()], metadata=self._metadata)
        self.finished = True
        return self.posted

    async def fail(self, message: str) -> list[str]:
        """End the answer with a clear error line (after whatever text already arrived)."""
        await self.append("", final=True)
        note = f"⚠️ {message}"
        if self.started:
            await self._close_message(f"\n\n{note}", metadata=self._metadata)
        else:
            await self._post_final(note, metadata=self._metadata)
        self.finished = True
        return self.posted

    async def stopped(self, note: str) -> list[str]:
        """End the answer where it stopped: what was written so far, then `note`."""
        await self.append("", final=True)
        if self.started:
            await self._close_message(f"\n\n{note}", metadata=self._metadata)
        else:
            await self._post_final(note, metadata=self._metadata)
        self.finished = True
        return self.posted

    async def _write(self, text: str) -> None:
        self._text += text
        if self._broken or self._halted:
            return
        if self._native:
            self._pending += text
            if self._stream is not None and not self._due() and len(self._pending) < STREAM_CHUNK:
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
        except Exception as exc:
            started = self._stream is not None and self._stream.ts is not None
            if _stopped_in_slack(exc) and self._ts is not None:
                self._halted = True  # the stop reaches the turn in a moment
                return True
            if outage.unavailable(exc):
                if not started:
                    raise  # Slack is down, not refusing streams: no fallback for good
                self._broken = True
                return True
            if started or not isinstance(exc, SlackApiError):
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
        if self._native and self._tasks and not self._broken:
            await self._drain()
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

    async def _placeholder_update(self) -> None:
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
        if self._due():
            try:
                with outage.brief():
                    await self._update(self._live_blocks)
            except Exception as exc:
                # An edit on the way is worth no wait: the final one carries all the text.
                if not outage.unavailable(exc):
                    raise
                self._last_update = time.monotonic()

    async def _update(self, extra_blocks: Blocks = (), metadata: Metadata = None) -> None:
        assert self._ts is not None
        await self._client.chat_update(
            channel=self._key.channel_id,
            ts=self._ts,
            text=to_mrkdwn(self._text),
            blocks=[*markdown_blocks(self._text), *extra_blocks],
            metadata=metadata,
        )
        self._last_update = time.monotonic()
        self._dirty = False

    async def _close_message(
        self, tail: str, *, extra_blocks: Blocks = (), metadata: Metadata = None
    ) -> None:
        """Finish the message being written (adding `tail`); the next write starts a new one."""
        if self._broken and self._ts is not None:
            await self._replace(self._text + tail, extra_blocks, metadata)
        elif self._stream is not None:
            pending, self._pending = self._pending, ""
            try:
                await self._stream.stop(
                    markdown_text=(pending + tail) or None,
                    blocks=list(extra_blocks) or None,
                    metadata=metadata,
                )
                await self._note_stream_ts()
            except Exception as exc:
                if self._stream.ts is not None and _stopped_in_slack(exc):
                    # Slack's Stop ended the stream: one edit finishes it with everything written.
                    self._ts = self._stream.ts
                    self._text += tail
                    await self._update(extra_blocks, metadata)
                elif self._stream.ts is not None and outage.unavailable(exc):
                    await self._replace(self._text + tail, extra_blocks, metadata)
                elif self._stream.ts is not None or not isinstance(exc, SlackApiError):
                    raise
                else:
                    log.info("native streaming refused (%s); posting instead", exc.response.get("error"))
                    self._native = False
                    await self._post_final(self._text + tail, extra_blocks, metadata)
        elif self._ts is not None:
            self._text += tail
            try:
                await self._update(extra_blocks, metadata)
            except Exception as exc:
                if not outage.unavailable(exc):
                    raise
                await self._replace(self._text, extra_blocks, metadata)
        elif tail:
            await self._post_final(tail, extra_blocks, metadata)
        self._stream = None
        self._ts = None
        self._text = ""
        self._last_update = 0.0
        self._broken = False
        self._halted = False

    async def _replace(self, markdown: str, extra_blocks: Blocks, metadata: Metadata = None) -> None:
        """A message Slack would not let us finish: post it anew, complete, and delete the stub.

        Posting comes first: if Slack is still down, the stub stays the thread's reply in
        flight, and the turn (kept queued) removes it when it answers again.
        """
        broken = self._ts or (self._stream.ts if self._stream is not None else None)
        log.warning("could not finish reply %s in %s; posting it again in full", broken, self._key)
        ts = await post_note(self._client, self._key, markdown, extra_blocks, metadata)
        self.posted = [ts if p == broken else p for p in self.posted]
        if broken is not None:
            try:
                await self._client.chat_delete(channel=self._key.channel_id, ts=broken)
            except Exception as exc:
                if not (outage.unavailable(exc) or isinstance(exc, SlackApiError)):
                    raise
                log.warning("could not delete the unfinished reply %s in %s", broken, self._key)

    async def _post_final(self, markdown: str, extra_blocks: Blocks = (), metadata: Metadata = None) -> None:
        self.posted.append(await post_note(self._client, self._key, markdown, extra_blocks, metadata))


def _stopped_in_slack(exc: BaseException) -> bool:
    return isinstance(exc, SlackApiError) and exc.response.get("error") in STOPPED_IN_SLACK


async def post_note(
    client: AsyncWebClient,
    key: ThreadKey,
    markdown: str,
    extra_blocks: Blocks = (),
    metadata: Metadata = None,
) -> str:
    """One finished message in the thread (notices about files, errors, confirmations)."""
    resp = await client.chat_postMessage(
        channel=key.channel_id,
        thread_ts=key.thread_ts,
        text=to_mrkdwn(markdown),
        blocks=[*markdown_blocks(markdown), *extra_blocks],
        metadata=metadata,
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
