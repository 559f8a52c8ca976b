"""What happens to a thread's server-side state when people act on it in Slack outside a turn:
files and threads deleted, feedback given."""

from __future__ import annotations

import contextlib
import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.assistant.base import Backend, BackendError
from bot.inbound import ThreadKey
from bot.store import Store

log = logging.getLogger(__name__)


async def forget_file(store: Store, backend: Backend, team: str, slack_file_id: str) -> None:
    """A file deleted in Slack is dropped from its thread's knowledge."""
    found = await store.take_file(team, slack_file_id)
    if found is None:
        return
    key, remote_id = found
    binding = await store.binding(key)
    if binding is None or binding.backend != backend.name:
        return
    try:
        await backend.forget_file(binding, remote_id)
        log.info("removed deleted file %s from %s", slack_file_id, key, extra={"thread_key": str(key)})
    except BackendError as exc:
        log.warning(
            "could not remove deleted file %s: %s", slack_file_id, exc, extra={"thread_key": str(key)}
        )


async def record_feedback(
    store: Store, backend: Backend, slack: AsyncWebClient, key: ThreadKey, user: str, value: str
) -> None:
    """👍/👎 on an answer: kept on the server-side conversation's metadata, counted, thanked."""
    metrics.inc("feedback_total", value=value)
    binding = await store.binding(key)
    if binding is not None and binding.backend == backend.name:
        try:
            await backend.annotate(binding, {"feedback": value, "feedback_user": user})
        except BackendError as exc:
            log.warning("could not record feedback: %s", exc, extra={"thread_key": str(key)})
    log.info("feedback %s from %s", value, user, extra={"thread_key": str(key)})
    with contextlib.suppress(SlackApiError):
        await slack.chat_postEphemeral(
            channel=key.channel_id, user=user, thread_ts=key.thread_ts, text="Thanks for the feedback!"
        )


async def close_thread(store: Store, backend: Backend, key: ThreadKey) -> None:
    """The thread's root was deleted in Slack: delete its conversation (and files) too."""
    binding = await store.unbind(key)
    await store.forget_thread_files(key)
    if binding is None or binding.backend != backend.name:
        return
    try:
        await backend.close(binding)
        log.info(
            "thread deleted in Slack; closed %s", binding.conversation_id, extra={"thread_key": str(key)}
        )
    except BackendError as exc:
        log.warning(
            "could not close the deleted thread's conversation: %s", exc, extra={"thread_key": str(key)}
        )
