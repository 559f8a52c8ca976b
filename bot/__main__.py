"""CLI: `threadbridge run | worker | check | assistant create`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

import openai
import uvloop
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from slack_sdk.errors import SlackApiError

from bot import config_file, logs, policy
from bot.app import Runtime, hosted_tool_notes, make_tools
from bot.assistant.assistants import create_assistant
from bot.assistant.base import BackendError
from bot.config import ConfigError, Settings, load_settings
from bot.config_file import PolicyError

log = logging.getLogger("threadbridge")


def _runtime(settings: Settings, command: str, *, serve_http: bool) -> Runtime:
    if command == "worker":
        return Runtime(settings, edge=False, workers=True, serve_http=serve_http)
    # Worker processes share state through Redis only; the embedded one lives in this process.
    children = settings.worker_processes if settings.workers and settings.redis_url else 0
    return Runtime(settings, edge=True, workers=settings.workers and not children, child_workers=children)


async def _serve(settings: Settings, command: str, *, serve_http: bool) -> int:
    try:
        runtime = _runtime(settings, command, serve_http=serve_http)
    except PolicyError as exc:
        for problem in exc.problems:
            log.error("configuration error: %s", problem)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, runtime.reload)
    try:
        await runtime.start()
    except SlackApiError as exc:
        # A refused token is an operator's problem to fix: one line, not a traceback.
        log.error("could not start: Slack refused the credentials (%s)", exc.response.get("error"))
        await runtime.stop()
        return 1
    except BaseException:
        await runtime.stop()
        raise
    log.info("threadbridge is up")
    await stop.wait()
    log.info("shutting down: finishing in-flight turns (grace %ss)", settings.shutdown_grace_seconds)
    await runtime.stop()
    log.info("stopped")
    return 0


async def _check(settings: Settings) -> int:
    try:
        config_file.load(settings, policy.tool_names(make_tools(settings)))
        if settings.config_file is not None:
            print(f"configuration file: ok ({settings.config_file})")
    except PolicyError as exc:
        for problem in exc.problems:
            print(f"problem: {problem}")
        return 1
    except ConfigError as exc:
        print(f"problem: {exc}")
        return 1
    runtime = Runtime(settings, edge=False, workers=False)
    problems: list[str] = []
    try:
        try:
            auth = await runtime.slack.auth_test()
            print(f"slack: ok (team {auth.get('team_id')}, bot user {auth.get('user_id')})")
        except Exception as exc:
            problems.append(f"slack: {type(exc).__name__}: {getattr(exc, 'response', {}).get('error', '')}")
        print("redis: ok" if await runtime.ready() else "redis: unreachable")
        if not await runtime.ready():
            problems.append("redis: unreachable")
        backend_problems = await runtime.backend.check()
        problems.extend(f"{settings.backend}: {p}" for p in backend_problems)
        for note in runtime.backend.notes():
            print(f"{settings.backend}: {note}")
        if not backend_problems:
            if settings.backend == "assistants":
                print(f"{settings.backend}: ok (assistant {settings.assistant_id})")
            else:
                print(f"{settings.backend}: ok (model {settings.openai_model})")
        for note in hosted_tool_notes(settings):
            print(f"{settings.backend}: {note}")
    finally:
        await runtime.backend.aclose()
        await runtime.slack_session.close()
        await runtime.redis.aclose()
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if problems else 0


class AssistantSettings(BaseSettings):
    """What `assistant create` reads: the same variables as Settings, but only the OpenAI ones.

    A server that needs an assistant has no ASSISTANT_ID yet, and may have no Slack app
    either, so Settings' validation would refuse to load.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    openai_api_key: SecretStr | None = Field(None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, alias="OPENAI_BASE_URL")
    openai_model: str = Field(Settings.model_fields["openai_model"].default, alias="OPENAI_MODEL")
    instructions: str | None = Field(None, alias="THREADBRIDGE_INSTRUCTIONS")
    instructions_file: Path | None = Field(None, alias="THREADBRIDGE_INSTRUCTIONS_FILE")
    code_interpreter: bool = Field(False, alias="THREADBRIDGE_CODE_INTERPRETER")

    def system_instructions(self) -> str:
        # Settings owns the precedence rule (file, then text, then the default).
        unvalidated = Settings.model_construct(
            instructions=self.instructions, instructions_file=self.instructions_file
        )
        return unvalidated.system_instructions()


async def _create_assistant(settings: AssistantSettings) -> int:
    try:
        client = openai.AsyncOpenAI(
            api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
            base_url=settings.openai_base_url,
            max_retries=3,
        )
    except openai.OpenAIError:
        print("threadbridge: configuration error: OPENAI_API_KEY is not set", file=sys.stderr)
        return 2
    try:
        assistant_id = await create_assistant(
            client,
            model=settings.openai_model,
            instructions=settings.system_instructions(),
            code_interpreter=settings.code_interpreter,
        )
    except BackendError as exc:
        print(f"threadbridge: could not create the assistant: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"threadbridge: cannot read the instructions file: {exc}", file=sys.stderr)
        return 2
    finally:
        await client.close()
    # Only the id on stdout, so scripts can capture it.
    print(assistant_id)
    print(
        f"Set ASSISTANT_ID={assistant_id} and THREADBRIDGE_BACKEND=assistants to use it.",
        file=sys.stderr,
    )
    return 0


def _assistant_command() -> int:
    try:
        settings = AssistantSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        names = ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors(include_input=False))
        print(f"threadbridge: configuration error: invalid {names}", file=sys.stderr)
        return 2
    return asyncio.run(_create_assistant(settings))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="threadbridge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="Slack edge (HTTP or Socket Mode) plus the worker processes it supervises")
    worker = sub.add_parser("worker", help="workers only: run turns queued in Redis")
    worker.add_argument(
        "--no-http", action="store_true", help="serve no /healthz or /metrics (as `run`'s workers do)"
    )
    sub.add_parser("check", help="check configuration, Slack, Redis and the assistant server")
    assistant = sub.add_parser("assistant", help="manage the assistant of the `assistants` backend")
    actions = assistant.add_subparsers(dest="action", required=True)
    actions.add_parser(
        "create", help="create an assistant (OPENAI_MODEL, instructions) and print its id for ASSISTANT_ID"
    )
    args = parser.parse_args(argv)
    if args.command == "assistant":
        return _assistant_command()
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"threadbridge: configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_format, settings.log_level)
    if args.command == "check":
        return asyncio.run(_check(settings))
    serve_http = not getattr(args, "no_http", False)
    # uvloop: the same asyncio API with a faster loop and I/O, which every ack and turn crosses.
    return uvloop.run(_serve(settings, args.command, serve_http=serve_http))


if __name__ == "__main__":
    sys.exit(main())
