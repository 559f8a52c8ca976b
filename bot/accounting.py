"""One turn's bookkeeping: its budget admission, clock, outcome and tokens (metrics, logs, budgets)."""

from __future__ import annotations

import logging

from bot import metrics
from bot.assistant.base import Usage
from bot.budgets import Budgets, Refusal, Spent
from bot.config_file import ChannelSettings, PolicyConfig
from bot.inbound import ThreadKey

log = logging.getLogger(__name__)


class TurnMeter:
    """Times a turn, sums what its model calls used, and settles it once it is over."""

    def __init__(
        self,
        key: ThreadKey,
        user: str,
        config: PolicyConfig,
        channel: ChannelSettings,
        budgets: Budgets | None,
    ) -> None:
        self.key = key
        self.user = user
        self.outcome = "completed"
        self._config = config
        self._channel = channel
        self._budgets = budgets
        self._timer = metrics.Timer()
        self._spent = Spent()
        self._models: set[str] = set()
        self._answering = False

    async def admit(self) -> Refusal | None:
        """Count this turn against the day's budgets, or say which limit it is over."""
        if self._budgets is None:
            return None
        refusal = await self._budgets.admit(
            self.key,
            self.user,
            self._channel.limits,
            self._config.reset,
            exempt=self.user in self._config.exempt_users,
        )
        if refusal is not None:
            self.outcome = "refused"
            metrics.inc("refusals_total", reason=refusal.reason)
            log.info(
                "turn for %s refused: %s (limit %s)",
                self.user,
                refusal.reason,
                refusal.limit,
                extra={"thread_key": str(self.key)},
            )
        return refusal

    def text(self) -> None:
        if not self._answering:
            self._answering = True
            metrics.observe("first_token_seconds", self._timer.elapsed)

    def used(self, usage: Usage) -> None:
        self._spent = self._spent.plus(usage.input_tokens, usage.output_tokens, usage.cached_tokens)
        self._models.add(usage.model)
        team, model = self.key.team_id, usage.model or "unknown"
        metrics.inc("tokens_total", usage.input_tokens, team=team, model=model, kind="input")
        metrics.inc("tokens_total", usage.output_tokens, team=team, model=model, kind="output")
        metrics.inc("tokens_total", usage.cached_tokens, team=team, model=model, kind="cached")

    async def close(self) -> None:
        """Charge the tokens (whatever the outcome: a failed answer still cost them), count, log."""
        metrics.inc("turns_total", team=self.key.team_id, outcome=self.outcome)
        metrics.observe("turn_seconds", self._timer.elapsed, outcome=self.outcome)
        spent = self._spent
        if self._models:
            # Counts only, never content: safe at INFO.
            log.info(
                "turn used %d input, %d output, %d cached tokens (%s)",
                spent.input_tokens,
                spent.output_tokens,
                spent.cached_tokens,
                ",".join(sorted(self._models)),
                extra={"thread_key": str(self.key)},
            )
        if self._budgets is None or self.outcome == "refused":
            return
        totals = await self._budgets.charge(self.key, self.user, spent, self._config.reset)
        metrics.gauge("team_tokens_today", totals["team"], team=self.key.team_id)
        limits = self._channel.limits
        for scope, limit in (("user", limits.user_tokens), ("team", limits.team_tokens)):
            if limit:
                metrics.observe("budget_used_ratio", totals[scope] / limit, scope=scope)
