"""The configuration file (THREADBRIDGE_CONFIG): its shape, its validation, and what it means.

Environment variables stay the place for secrets and defaults; the file adds structure:
per-channel settings, access rules and budgets. `load` turns both into one PolicyConfig, or
raises PolicyError with one line per problem naming the file and the key.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.attachments import FileKind, parse_kinds
from bot.config import Settings

T = TypeVar("T")

RespondTo = Literal["mentions", "thread_replies"]
CHANNEL_KEY = re.compile(r"^(?:[CGD][A-Z0-9]{2,}|#[a-z0-9][a-z0-9._-]{0,79})$")
HOSTED_TOOLS = frozenset({"file_search", "code_interpreter", "web_search"})


# ----------------------------------------------------------------------------- the file's shape


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChannelBudget(_Strict):
    user_daily_tokens: int | None = Field(default=None, ge=1)
    user_daily_turns: int | None = Field(default=None, ge=1)
    daily_tokens: int | None = Field(default=None, ge=1)
    daily_turns: int | None = Field(default=None, ge=1)


class ChannelEntry(_Strict):
    instructions: str | None = None
    instructions_file: Path | None = None
    model: str | None = None
    tools: list[str] | None = None
    file_kinds: list[str] | None = None
    code_interpreter: bool | None = None
    respond_to: RespondTo | None = None
    enabled: bool | None = None
    budget: ChannelBudget | None = None


class ListRule(_Strict):
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)


class AccessEntry(_Strict):
    teams: ListRule = Field(default_factory=ListRule)
    channels: ListRule = Field(default_factory=ListRule)
    users: ListRule = Field(default_factory=ListRule)
    external_users: bool = False
    guests: bool = True
    direct_messages: bool = True


class BudgetsEntry(_Strict):
    user_daily_tokens: int | None = Field(default=None, ge=1)
    user_daily_turns: int | None = Field(default=None, ge=1)
    team_daily_tokens: int | None = Field(default=None, ge=1)
    team_daily_turns: int | None = Field(default=None, ge=1)
    reset_hour: int | None = Field(default=None, ge=0, le=23)
    timezone: str | None = None
    exempt_users: list[str] | None = None


class ConfigFile(_Strict):
    default: ChannelEntry = Field(default_factory=ChannelEntry)
    channels: dict[str, ChannelEntry] = Field(default_factory=dict)
    access: AccessEntry = Field(default_factory=AccessEntry)
    budgets: BudgetsEntry = Field(default_factory=lambda: BudgetsEntry())


# ----------------------------------------------------------------------------- what a Turn sees


@dataclass(frozen=True, slots=True)
class Limits:
    """Daily limits that apply to one user's turn in one channel; None means no limit."""

    user_tokens: int | None = None
    user_turns: int | None = None
    team_tokens: int | None = None
    team_turns: int | None = None
    channel_user_tokens: int | None = None
    channel_user_turns: int | None = None
    channel_tokens: int | None = None
    channel_turns: int | None = None


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """The effective settings of one channel: the default entry, then the channel's own."""

    instructions: str = ""  # "" = the backend's default
    model: str = ""
    tools: frozenset[str] | None = None  # None = every tool the bot has
    file_kinds: frozenset[FileKind] | None = None  # None = THREADBRIDGE_FILE_KINDS
    code_interpreter: bool | None = None
    respond_to: RespondTo = "thread_replies"
    enabled: bool = True
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True, slots=True)
class Rules:
    """Allow and deny lists; an empty allow list allows everyone the deny list leaves."""

    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()

    def permits(self, *names: str) -> bool:
        present = {n for n in names if n}
        if present & self.deny:
            return False
        return not self.allow or bool(present & self.allow)


@dataclass(frozen=True, slots=True)
class Access:
    teams: Rules = field(default_factory=Rules)
    channels: Rules = field(default_factory=Rules)
    users: Rules = field(default_factory=Rules)
    external_users: bool = False
    guests: bool = True
    direct_messages: bool = True


@dataclass(frozen=True, slots=True)
class Reset:
    """When daily budgets start afresh."""

    hour: int = 0
    timezone: str = "UTC"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """One validated configuration: the file (if any) over the environment's defaults."""

    default: ChannelSettings = field(default_factory=ChannelSettings)
    channels: dict[str, ChannelSettings] = field(default_factory=dict)  # by id or "#name"
    access: Access = field(default_factory=Access)
    reset: Reset = field(default_factory=Reset)
    exempt_users: frozenset[str] = frozenset()

    @property
    def uses_names(self) -> bool:
        """Whether deciding about a channel needs its name (a `#name` entry or rule)."""
        rules = self.access.channels
        return any(k.startswith("#") for k in (*self.channels, *rules.allow, *rules.deny))

    def for_channel(self, channel_id: str, name: str = "") -> ChannelSettings:
        found = self.channels.get(channel_id) or (self.channels.get(f"#{name}") if name else None)
        return found or self.default


class PolicyError(Exception):
    """The configuration file is invalid; `problems` has one line per problem (file and key)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def id_list(text: str) -> frozenset[str]:
    """`A, B,C` → {A, B, C} (the env shortcuts)."""
    return frozenset(part.strip() for part in text.split(",") if part.strip())


# ----------------------------------------------------------------------------- loading


def load(settings: Settings, tool_names: Iterable[str] = ()) -> PolicyConfig:
    """The configuration in force: THREADBRIDGE_CONFIG's file over the environment's defaults."""
    env_limits = Limits(
        user_tokens=settings.user_daily_tokens,
        user_turns=settings.user_daily_turns,
        team_tokens=settings.team_daily_tokens,
        team_turns=settings.team_daily_turns,
    )
    if settings.config_file is None:
        return PolicyConfig(
            default=ChannelSettings(limits=env_limits),
            access=_access(AccessEntry(), settings),
            reset=Reset(settings.budget_reset_hour, settings.budget_timezone),
            exempt_users=id_list(settings.budget_exempt_users),
        )
    return _Loader(settings.config_file, settings, frozenset(tool_names) | HOSTED_TOOLS).load(env_limits)


class _Loader:
    def __init__(self, path: Path, settings: Settings, tool_names: frozenset[str]) -> None:
        self.path = path
        self.settings = settings
        self.tool_names = tool_names
        self.problems: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{self.path}: {where}: {message}" if where else f"{self.path}: {message}")

    def load(self, env_limits: Limits) -> PolicyConfig:
        parsed = self._parse()
        if parsed is None:
            raise PolicyError(self.problems)
        budgets = parsed.budgets
        limits = Limits(
            user_tokens=_first(budgets.user_daily_tokens, env_limits.user_tokens),
            user_turns=_first(budgets.user_daily_turns, env_limits.user_turns),
            team_tokens=_first(budgets.team_daily_tokens, env_limits.team_tokens),
            team_turns=_first(budgets.team_daily_turns, env_limits.team_turns),
        )
        default = self._settle("default", parsed.default, ChannelSettings(limits=limits))
        channels: dict[str, ChannelSettings] = {}
        for name, entry in parsed.channels.items():
            if not CHANNEL_KEY.match(name):
                self.problem(f"channels.{name}", "not a channel id (C…, G…, D…) or #name")
                continue
            channels[name] = self._settle(f"channels.{name}", entry, default)
        for side in ("allow", "deny"):
            for i, value in enumerate(getattr(parsed.access.channels, side)):
                if not CHANNEL_KEY.match(value):
                    self.problem(f"access.channels.{side}.{i}", f"{value!r} is not a channel id or #name")
        timezone = budgets.timezone or self.settings.budget_timezone
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            self.problem("budgets.timezone", f"unknown time zone {timezone!r}")
        if self.problems:
            raise PolicyError(self.problems)
        exempt = budgets.exempt_users
        if exempt is None:
            exempt = sorted(id_list(self.settings.budget_exempt_users))
        return PolicyConfig(
            default=default,
            channels=channels,
            access=_access(parsed.access, self.settings),
            reset=Reset(_first(budgets.reset_hour, self.settings.budget_reset_hour) or 0, timezone),
            exempt_users=frozenset(exempt),
        )

    def _parse(self) -> ConfigFile | None:
        try:
            raw: Any = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            self.problem("", f"cannot read it ({exc.strerror or type(exc).__name__})")
            return None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}" if mark is not None else ""
            self.problem(where, f"not valid YAML ({getattr(exc, 'problem', None) or 'syntax error'})")
            return None
        try:
            return ConfigFile.model_validate(raw if raw is not None else {})
        except ValidationError as exc:
            for err in exc.errors(include_input=False, include_url=False):
                self.problem(".".join(str(p) for p in err["loc"]) or "(top level)", err["msg"])
            return None

    def _settle(self, where: str, entry: ChannelEntry, base: ChannelSettings) -> ChannelSettings:
        """An entry's values over `base` (the default entry, for a channel)."""
        instructions = base.instructions
        if entry.instructions is not None and entry.instructions_file is not None:
            self.problem(where, "set instructions or instructions_file, not both")
        elif entry.instructions is not None:
            instructions = entry.instructions.strip()
        elif entry.instructions_file is not None:
            instructions = self._read_instructions(f"{where}.instructions_file", entry.instructions_file)
        kinds = base.file_kinds
        if entry.file_kinds is not None:
            try:
                kinds = parse_kinds(",".join(entry.file_kinds))
            except ValueError as exc:
                self.problem(f"{where}.file_kinds", str(exc))
        tools = base.tools
        if entry.tools is not None:
            unknown = sorted(set(entry.tools) - self.tool_names)
            if unknown:
                self.problem(f"{where}.tools", f"unknown tool(s) {unknown}; known: {sorted(self.tool_names)}")
            tools = frozenset(entry.tools)
        limits = base.limits
        if entry.budget is not None:
            b = entry.budget
            limits = Limits(
                user_tokens=base.limits.user_tokens,
                user_turns=base.limits.user_turns,
                team_tokens=base.limits.team_tokens,
                team_turns=base.limits.team_turns,
                channel_user_tokens=b.user_daily_tokens,
                channel_user_turns=b.user_daily_turns,
                channel_tokens=b.daily_tokens,
                channel_turns=b.daily_turns,
            )
        return ChannelSettings(
            instructions=instructions,
            model=entry.model if entry.model is not None else base.model,
            tools=tools,
            file_kinds=kinds,
            code_interpreter=_first(entry.code_interpreter, base.code_interpreter),
            respond_to=entry.respond_to or base.respond_to,
            enabled=_first(entry.enabled, base.enabled) is not False,
            limits=limits,
        )

    def _read_instructions(self, where: str, path: Path) -> str:
        # Relative to the configuration file, so the file and its prompts can move together.
        full = path if path.is_absolute() else self.path.parent / path
        try:
            return full.read_text(encoding="utf-8").strip()
        except OSError as exc:
            self.problem(where, f"cannot read {full} ({exc.strerror or type(exc).__name__})")
            return ""


def _first(value: T | None, fallback: T | None) -> T | None:
    return value if value is not None else fallback


def _access(entry: AccessEntry, settings: Settings) -> Access:
    """The file's lists; an env shortcut supplies an allow list the file leaves empty."""

    def rules(rule: ListRule, env: str) -> Rules:
        return Rules(frozenset(rule.allow) or id_list(env), frozenset(rule.deny))

    return Access(
        teams=rules(entry.teams, settings.allowed_teams),
        channels=rules(entry.channels, settings.allowed_channels),
        users=rules(entry.users, settings.allowed_users),
        external_users=entry.external_users,
        guests=entry.guests,
        direct_messages=entry.direct_messages,
    )


def instruction_files(settings: Settings) -> list[Path]:
    """The files a configuration reads, so a change to any of them reloads it."""
    path = settings.config_file
    if path is None:
        return []
    found = [path]
    with contextlib.suppress(OSError, yaml.YAMLError):
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        entries = [raw.get("default") or {}, *((raw.get("channels") or {}).values())]
        for entry in entries:
            name = entry.get("instructions_file") if isinstance(entry, dict) else None
            if isinstance(name, str):
                found.append(Path(name) if Path(name).is_absolute() else path.parent / name)
    return found
