"""Slack agent sessions: `processing` while a turn works (Slack then shows its own Stop), `active` after.

Best effort: a failure here never fails a turn. A workspace that has no sessions for this
app (it is not declared as an agent there, or the method is unknown) is learnt once per
process, so it is not asked again on every turn.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.inbound import ThreadKey

log = logging.getLogger(__name__)

PROCESSING = "processing"
ACTIVE = "active"
# Answers that mean "no sessions here at all", as opposed to a problem with this one thread.
UNAVAILABLE = frozenset(
    {"not_authorized", "unknown_method", "not_allowed_token_type", "missing_scope", "feature_not_enabled"}
)


class AgentSessions:
    """Sets a thread's agent-session status, remembering the workspaces that have none."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client
        self._unavailable: set[str] = set()

    async def processing(self, key: ThreadKey) -> bool:
        """Mark the thread's session as working; True when Slack took it (and shows its Stop)."""
        return await self._set(key, PROCESSING)

    async def active(self, key: ThreadKey) -> None:
        """Out of `processing`, which never clears by itself: after answers, errors and stops."""
        await self._set(key, ACTIVE)

    async def _set(self, key: ThreadKey, status: str) -> bool:
        if key.team_id in self._unavailable:
            return False
        try:
            await self._client.agents_sessions_setStatus(
                channel_id=key.channel_id, thread_ts=key.thread_ts, status=status
            )
            return True
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "")
            if error in UNAVAILABLE:
                self._unavailable.add(key.team_id)
                log.info("no agent sessions in team %s (%s); not asking again", key.team_id, error)
            else:
                log.info("agent session status %s refused in %s: %s", status, key, error)
        except Exception as exc:  # a status is never worth a turn
            log.info("agent session status %s failed in %s: %s", status, key, type(exc).__name__)
        return False
