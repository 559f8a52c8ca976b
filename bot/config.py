"""Settings: every environment variable the bot reads lives here, documented."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.attachments import parse_kinds
from bot.mcp import McpConfigError, load_mcp_servers

DEFAULT_INSTRUCTIONS = (
    "You are a helpful assistant inside a Slack thread. Several people may take part; each "
    "user message starts with the speaker's name. Answer concisely in Markdown, and say so "
    "when you are unsure."
)


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable and never its value."""


class Settings(BaseSettings):
    """Threadbridge configuration, read from the environment (and an optional .env file)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    slack_bot_token: SecretStr = Field(alias="SLACK_BOT_TOKEN", description="Bot token (xoxb-…). Required.")
    slack_signing_secret: SecretStr | None = Field(
        None, alias="SLACK_SIGNING_SECRET", description="Verifies HTTP-mode requests."
    )
    slack_app_token: SecretStr | None = Field(
        None, alias="SLACK_APP_TOKEN", description="App token (xapp-…); set it for Socket Mode."
    )
    slack_api_url: str = Field(
        "https://slack.com/api/",
        alias="SLACK_API_URL",
        description="Slack Web API base URL (proxies, GovSlack, tests).",
    )
    host: str = Field("0.0.0.0", alias="HOST", description="HTTP listen address.")
    port: int = Field(3000, alias="PORT", description="HTTP listen port (events at POST /slack/events).")

    openai_api_key: SecretStr | None = Field(
        None, alias="OPENAI_API_KEY", description="OpenAI (or compatible server) API key."
    )
    openai_base_url: str | None = Field(
        None, alias="OPENAI_BASE_URL", description="OpenAI-compatible API base URL."
    )
    openai_model: str = Field("gpt-5.1", alias="OPENAI_MODEL", description="Model for the responses backend.")
    backend: Literal["responses", "assistants"] = Field(
        "responses",
        alias="THREADBRIDGE_BACKEND",
        description="`responses` or `assistants` (legacy).",
    )
    assistant_id: str | None = Field(
        None, alias="ASSISTANT_ID", description="Assistant for the `assistants` backend."
    )
    instructions: str | None = Field(
        None, alias="THREADBRIDGE_INSTRUCTIONS", description="System instructions (text)."
    )
    instructions_file: Path | None = Field(
        None, alias="THREADBRIDGE_INSTRUCTIONS_FILE", description="System instructions (file path)."
    )

    redis_url: str | None = Field(
        None,
        alias="REDIS_URL",
        description="Redis URL (redis://, rediss://, unix://); unset → embedded, state lost on exit.",
    )
    redis_prefix: str = Field("tb:", alias="THREADBRIDGE_REDIS_PREFIX", description="Redis key prefix.")
    redis_pool_size: int = Field(
        50,
        alias="THREADBRIDGE_REDIS_POOL_SIZE",
        ge=2,
        description="Redis connections per process; when all are busy, callers wait (logged).",
    )
    redis_pool_timeout_seconds: float = Field(
        10.0,
        alias="THREADBRIDGE_REDIS_POOL_TIMEOUT_SECONDS",
        gt=0,
        description="Longest wait for a free pooled Redis connection before the step fails and is retried.",
    )
    slack_max_connections: int = Field(
        64,
        alias="THREADBRIDGE_SLACK_MAX_CONNECTIONS",
        ge=1,
        description="Keep-alive connections to the Slack Web API per process.",
    )
    thread_ttl_days: int = Field(
        90,
        alias="THREADBRIDGE_THREAD_TTL_DAYS",
        ge=1,
        description="Days a thread binding lives after its last activity.",
    )
    log_format: Literal["text", "json"] = Field(
        "text", alias="THREADBRIDGE_LOG_FORMAT", description="`text` or `json` logs."
    )
    log_level: str = Field("INFO", alias="THREADBRIDGE_LOG_LEVEL", description="Log level.")

    code_interpreter: bool = Field(
        False, alias="THREADBRIDGE_CODE_INTERPRETER", description="Offer the code interpreter tool."
    )
    tools: str = Field(
        "",
        alias="THREADBRIDGE_TOOLS",
        description="Comma-separated importable modules whose `@tool` functions the assistant may call.",
    )
    tool_timeout_seconds: float = Field(
        30.0,
        alias="THREADBRIDGE_TOOL_TIMEOUT_SECONDS",
        gt=0,
        description="Longest one function tool call may take; past it the model gets an error text.",
    )
    web_search: bool = Field(
        False, alias="THREADBRIDGE_WEB_SEARCH", description="Offer the hosted web search tool (responses)."
    )
    web_search_domains: str = Field(
        "",
        alias="THREADBRIDGE_WEB_SEARCH_DOMAINS",
        description="Comma-separated domains web search is limited to (empty: the whole web).",
    )
    mcp_servers: Path | None = Field(
        None,
        alias="THREADBRIDGE_MCP_SERVERS",
        description="YAML file listing remote MCP servers the assistant may use (responses backend).",
    )
    mcp_approvers: str = Field(
        "",
        alias="THREADBRIDGE_MCP_APPROVERS",
        description="Comma-separated Slack user ids who may approve MCP tool calls besides the asker.",
    )
    mcp_approval_timeout_seconds: int = Field(
        900,
        alias="THREADBRIDGE_MCP_APPROVAL_TIMEOUT_SECONDS",
        ge=1,
        description="How long an MCP approval request waits for a click before it expires.",
    )
    file_kinds: str = Field(
        "document,image,data",
        alias="THREADBRIDGE_FILE_KINDS",
        description="Kinds of shared files the bot takes: document (file search), image (vision), data.",
    )
    max_file_mb: int = Field(
        25,
        alias="THREADBRIDGE_MAX_FILE_MB",
        ge=1,
        description="Largest Slack file the bot downloads (MB).",
    )
    lease_seconds: int = Field(
        15,
        alias="THREADBRIDGE_LEASE_SECONDS",
        ge=2,
        description="A turn's lease; a dead worker's turn is reclaimed once it lapses.",
    )
    max_turns: int = Field(
        1000, alias="THREADBRIDGE_MAX_TURNS", ge=1, description="Concurrent turns per process."
    )
    workers: bool = Field(
        True,
        alias="THREADBRIDGE_WORKERS",
        description="`run` also works turns in-process; false → Slack edge only.",
    )
    worker_processes: int = Field(
        1,
        alias="THREADBRIDGE_WORKER_PROCESSES",
        ge=0,
        description=(
            "Worker processes `run` starts beside its Slack edge (restarted if they exit); "
            "0 → turns run in the edge's own process (always so without REDIS_URL)."
        ),
    )
    worker_nice: int = Field(
        10,
        alias="THREADBRIDGE_WORKER_NICE",
        ge=0,
        le=19,
        description="Niceness added to `run`'s worker processes, so acks go first on busy cores.",
    )
    turn_timeout_seconds: int = Field(
        300,
        alias="THREADBRIDGE_TURN_TIMEOUT_SECONDS",
        ge=5,
        description="Longest a model run may take.",
    )
    shutdown_grace_seconds: int = Field(
        25,
        alias="THREADBRIDGE_SHUTDOWN_GRACE_SECONDS",
        ge=0,
        description="On SIGTERM, how long in-flight turns may finish.",
    )
    flood_limit: int = Field(
        20,
        alias="THREADBRIDGE_FLOOD_LIMIT",
        ge=1,
        description="Messages one user may send the bot per minute before being asked to slow down.",
    )
    stream_max_len: int = Field(
        100_000,
        alias="THREADBRIDGE_STREAM_MAXLEN",
        ge=100,
        description="Approximate length cap of the turn stream.",
    )
    slack_streaming: bool = Field(
        True,
        alias="THREADBRIDGE_SLACK_STREAMING",
        description="Use Slack's native chat streaming; false → placeholder message updated ~1/s.",
    )
    slack_retry_seconds: float = Field(
        30.0,
        alias="THREADBRIDGE_SLACK_RETRY_SECONDS",
        ge=0,
        description="How long a Slack call is retried while Slack answers 5xx/429 or cannot be reached; "
        "a turn that still cannot write stays queued and is answered once Slack is back.",
    )
    stop_by: Literal["asker", "anyone"] = Field(
        "asker",
        alias="THREADBRIDGE_STOP_BY",
        description="Who may stop an answer being written: `asker` (the people it answers) or "
        "`anyone` in the thread. In DMs anyone may.",
    )
    stop_button: Literal["auto", "always", "never"] = Field(
        "auto",
        alias="THREADBRIDGE_STOP_BUTTON",
        description="Where Slack shows no Stop of its own (no agent session): `auto` puts a Stop "
        "button on answers written by message updates (native streaming off or refused); "
        "`always` writes such answers by updates so they all carry one; `never`.",
    )

    inline_image_max_px: int = Field(
        2048,
        alias="THREADBRIDGE_INLINE_IMAGE_MAX_PX",
        ge=64,
        description="On servers that refuse `vision` uploads, images go inline (base64), "
        "scaled down to this many pixels on their longer side.",
    )
    reset_deletes: bool = Field(
        True,
        alias="THREADBRIDGE_RESET_DELETES",
        description="`reset` deletes the old conversation and its file store on the server, else keeps them.",
    )
    allow_user_mentions: bool = Field(
        False,
        alias="THREADBRIDGE_ALLOW_USER_MENTIONS",
        description="Answers may mention (ping) users mentioned in the messages they answer; "
        "other mentions, @here/@channel and Slack link markup in answers are always neutralised.",
    )
    config_file: Path | None = Field(
        None,
        alias="THREADBRIDGE_CONFIG",
        description="YAML configuration file: per-channel settings, access rules, budgets.",
    )
    allowed_teams: str = Field(
        "", alias="THREADBRIDGE_ALLOWED_TEAMS", description="Workspace ids the bot serves (comma-separated)."
    )
    allowed_channels: str = Field(
        "", alias="THREADBRIDGE_ALLOWED_CHANNELS", description="Channel ids the bot serves (comma-separated)."
    )
    allowed_users: str = Field(
        "", alias="THREADBRIDGE_ALLOWED_USERS", description="User ids the bot serves (comma-separated)."
    )
    user_daily_tokens: int | None = Field(
        None, alias="THREADBRIDGE_USER_DAILY_TOKENS", ge=1, description="Tokens one user may use a day."
    )
    team_daily_tokens: int | None = Field(
        None, alias="THREADBRIDGE_TEAM_DAILY_TOKENS", ge=1, description="Tokens one workspace may use a day."
    )
    user_daily_turns: int | None = Field(
        None, alias="THREADBRIDGE_USER_DAILY_TURNS", ge=1, description="Answers one user may get a day."
    )
    team_daily_turns: int | None = Field(
        None, alias="THREADBRIDGE_TEAM_DAILY_TURNS", ge=1, description="Answers one workspace may get a day."
    )
    budget_reset_hour: int = Field(
        0, alias="THREADBRIDGE_BUDGET_RESET_HOUR", ge=0, le=23, description="Hour daily budgets reset."
    )
    budget_timezone: str = Field(
        "UTC", alias="THREADBRIDGE_BUDGET_TIMEZONE", description="Time zone of the reset hour (IANA name)."
    )
    budget_exempt_users: str = Field(
        "",
        alias="THREADBRIDGE_BUDGET_EXEMPT_USERS",
        description="User ids no budget applies to (comma-separated).",
    )
    safety_salt: SecretStr | None = Field(
        None,
        alias="THREADBRIDGE_SAFETY_SALT",
        description="Salt of the hashed user id sent as safety_identifier.",
    )
    max_output_tokens: int | None = Field(
        None, alias="THREADBRIDGE_MAX_OUTPUT_TOKENS", ge=16, description="Longest answer in tokens."
    )
    prometheus_multiproc_dir: Path | None = Field(
        None,
        alias="PROMETHEUS_MULTIPROC_DIR",
        description="prometheus-client's multi-process directory: /metrics merges every process using it.",
    )

    @field_validator("file_kinds")
    @classmethod
    def _check_kinds(cls, value: str) -> str:
        parse_kinds(value)
        return value

    @field_validator("budget_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _check_mode(self) -> Settings:
        if self.slack_app_token is None and self.slack_signing_secret is None:
            raise ValueError(
                "SLACK_SIGNING_SECRET is required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)"
            )
        if self.backend == "assistants" and not self.assistant_id:
            raise ValueError("ASSISTANT_ID is required when THREADBRIDGE_BACKEND=assistants")
        return self

    @property
    def tool_modules(self) -> list[str]:
        return _names(self.tools)

    @property
    def web_search_domain_list(self) -> tuple[str, ...]:
        return tuple(_names(self.web_search_domains))

    @property
    def approver_ids(self) -> frozenset[str]:
        return frozenset(_names(self.mcp_approvers))

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def safety_salt_value(self) -> str:
        """The salt, else one derived from the bot token: stable per app, secret like the token."""
        if self.safety_salt is not None:
            return self.safety_salt.get_secret_value()
        token = self.slack_bot_token.get_secret_value()
        return hashlib.sha256(f"threadbridge-safety:{token}".encode()).hexdigest()

    def mcp_tools(self) -> tuple[dict[str, Any], ...]:
        """The MCP servers of THREADBRIDGE_MCP_SERVERS as hosted tools, ${VAR} headers filled in."""
        if self.mcp_servers is None:
            return ()
        try:
            return load_mcp_servers(self.mcp_servers, os.environ)
        except McpConfigError as exc:
            raise ConfigError(f"THREADBRIDGE_MCP_SERVERS: {exc}") from None

    def system_instructions(self) -> str:
        """Instructions from the file, else the text, else the default."""
        if self.instructions_file is not None:
            return self.instructions_file.read_text(encoding="utf-8").strip()
        return self.instructions or DEFAULT_INSTRUCTIONS


def _names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def load_settings() -> Settings:
    """Read Settings, turning validation errors into one line that names the variable."""
    try:
        return Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            name = ".".join(str(p) for p in err["loc"]) or "configuration"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(msg if not err["loc"] else f"{name}: {msg}")
        raise ConfigError("; ".join(problems)) from None
