"""The CLI as an operator meets it: clear configuration errors, `check` against the servers."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.emulators.openai import OpenAIEmulator
from tests.emulators.openai.files import COMPATIBLE_PURPOSES
from tests.harness import ROOT

SECRET = "xoxb-1234567890-very-secret-token"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "OPENAI_", "THREADBRIDGE_", "ASSISTANT_")) and k != "REDIS_URL"
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


async def _run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _one_config_error(err: str) -> str:
    """The single stderr line a configuration error gives; fails on anything more."""
    [line] = err.splitlines()
    assert line.startswith("threadbridge: configuration error: "), line
    return line


async def test_missing_bot_token_is_one_line_naming_it(tmp_path: Path) -> None:
    code, out, err = await _run(["run"], _clean_env(), tmp_path)
    assert code == 2 and out == ""
    assert "SLACK_BOT_TOKEN" in _one_config_error(err)


async def test_http_mode_without_signing_secret_names_it_and_hides_the_token(tmp_path: Path) -> None:
    code, out, err = await _run(["run"], _clean_env(SLACK_BOT_TOKEN=SECRET), tmp_path)
    assert code == 2 and "SLACK_SIGNING_SECRET" in _one_config_error(err)
    assert SECRET not in err + out


async def test_assistants_backend_without_assistant_id_names_it_and_prints_no_secret(tmp_path: Path) -> None:
    secrets = {
        "SLACK_BOT_TOKEN": SECRET,
        "SLACK_APP_TOKEN": "xapp-1-A0APP-1234567890-very-secret-app-token",
        "OPENAI_API_KEY": "sk-proj-very-secret-openai-key",
    }
    code, out, err = await _run(["run"], _clean_env(**secrets, THREADBRIDGE_BACKEND="assistants"), tmp_path)
    assert code == 2 and "ASSISTANT_ID" in _one_config_error(err)
    for secret in secrets.values():
        assert secret not in err + out


async def test_a_secret_pasted_into_the_wrong_variable_is_not_echoed(tmp_path: Path) -> None:
    env = _clean_env(
        SLACK_BOT_TOKEN=SECRET, SLACK_APP_TOKEN="xapp-1-app", PORT="xoxb-pasted-in-the-wrong-place"
    )
    code, out, err = await _run(["run"], env, tmp_path)
    assert code == 2 and "PORT" in _one_config_error(err)
    assert "xoxb-pasted-in-the-wrong-place" not in err + out and SECRET not in err + out


async def test_check_reports_ok_and_a_rejected_key_without_printing_it(
    tmp_path: Path, bot_env_vars: dict[str, str], openai_emu: OpenAIEmulator
) -> None:
    openai_emu.models.append(bot_env_vars["OPENAI_MODEL"])
    code, out, err = await _run(["check"], _clean_env(**bot_env_vars), tmp_path)
    assert code == 0, out + err
    assert "slack: ok" in out and "redis: ok" in out
    backend = bot_env_vars.get("THREADBRIDGE_BACKEND", "responses")
    assert f"{backend}: ok" in out and "problem" not in out
    wrong = "sk-wrong-key-that-must-not-leak"
    code, out, err = await _run(["check"], _clean_env(**{**bot_env_vars, "OPENAI_API_KEY": wrong}), tmp_path)
    assert code == 1 and "problem:" in out
    problem = next(line for line in out.splitlines() if line.startswith("problem:"))
    assert backend in problem and "API key" in problem and "401" in problem, problem
    assert wrong not in out + err
    if bot_env_vars.get("THREADBRIDGE_BACKEND", "responses") == "responses":
        # (The assistants backend's model is the assistant's, which `check` looks up instead.)
        openai_emu.models.remove(bot_env_vars["OPENAI_MODEL"])
        code, out, _ = await _run(["check"], _clean_env(**bot_env_vars), tmp_path)
        assert code == 1 and "model 'test-model' is not served" in out


async def test_check_names_a_refused_slack_token_without_printing_it(
    tmp_path: Path, bot_env_vars: dict[str, str]
) -> None:
    env = _clean_env(**{**bot_env_vars, "SLACK_BOT_TOKEN": SECRET})
    code, out, err = await _run(["check"], env, tmp_path)
    assert code == 1, out + err
    assert "problem: slack:" in out and "invalid_auth" in out
    assert SECRET not in out + err


async def test_run_with_a_refused_bot_token_exits_with_one_line_not_a_traceback(
    tmp_path: Path, bot_env_vars: dict[str, str]
) -> None:
    wrong = "xoxb-refused-token-never-printed"
    code, out, err = await _run(["run"], _clean_env(**{**bot_env_vars, "SLACK_BOT_TOKEN": wrong}), tmp_path)
    assert code == 1
    assert "could not start: Slack refused the credentials (invalid_auth)" in err
    assert "Traceback" not in err and wrong not in out + err


async def test_check_reports_how_files_and_images_reach_the_server(
    tmp_path: Path, bot_env_vars: dict[str, str], openai_emu: OpenAIEmulator
) -> None:
    openai_emu.models.append(bot_env_vars["OPENAI_MODEL"])
    code, out, err = await _run(["check"], _clean_env(**bot_env_vars), tmp_path)
    assert code == 0, out + err
    assert "purpose 'assistants'" in out and "sent by file id" in out
    assert not openai_emu.files, "the probe image was deleted"
    openai_emu.file_purposes = COMPATIBLE_PURPOSES
    code, out, err = await _run(["check"], _clean_env(**bot_env_vars), tmp_path)
    assert code == 0, out + err
    assert "refuses purpose 'vision'" in out and "inline" in out


BROKEN_CONFIG = """
default:
  modle: gpt-4o
channels:
  C0OK:
    respond_to: always
"""


async def test_check_names_each_configuration_file_problem_on_its_own_line(tmp_path: Path) -> None:
    config = tmp_path / "threadbridge.yml"
    config.write_text(BROKEN_CONFIG)
    env = _clean_env(SLACK_BOT_TOKEN=SECRET, SLACK_SIGNING_SECRET="s", THREADBRIDGE_CONFIG=str(config))
    code, out, err = await _run(["check"], env, tmp_path)
    assert code == 1, out + err
    problems = [line for line in out.splitlines() if line.startswith("problem:")]
    assert len(problems) == 2, out
    assert problems[0].startswith(f"problem: {config}: default.modle: ")
    assert problems[1].startswith(f"problem: {config}: channels.C0OK.respond_to: ")
    assert SECRET not in out + err


async def test_run_with_an_invalid_configuration_file_exits_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "threadbridge.yml"
    config.write_text(BROKEN_CONFIG)
    env = _clean_env(SLACK_BOT_TOKEN=SECRET, SLACK_SIGNING_SECRET="s", THREADBRIDGE_CONFIG=str(config))
    code, out, err = await _run(["run"], env, tmp_path)
    assert code == 2
    assert f"configuration error: {config}: default.modle:" in err
    assert "Traceback" not in err and SECRET not in out + err
