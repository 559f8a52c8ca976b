"""The CLI as an operator meets it: clear configuration errors, `check` against the servers."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.emulators.openai import OpenAIEmulator
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


async def test_missing_bot_token_is_one_line_naming_it(tmp_path: Path) -> None:
    code, _, err = await _run(["run"], _clean_env(), tmp_path)
    assert code == 2
    assert err.strip().count("\n") == 0 and "SLACK_BOT_TOKEN" in err


async def test_http_mode_without_signing_secret_names_it_and_hides_the_token(tmp_path: Path) -> None:
    code, out, err = await _run(["run"], _clean_env(SLACK_BOT_TOKEN=SECRET), tmp_path)
    assert code == 2 and "SLACK_SIGNING_SECRET" in err
    assert SECRET not in err + out


async def test_check_reports_ok_and_a_rejected_key_without_printing_it(
    tmp_path: Path, bot_env_vars: dict[str, str], openai_emu: OpenAIEmulator
) -> None:
    openai_emu.models.append(bot_env_vars["OPENAI_MODEL"])
    code, out, err = await _run(["check"], _clean_env(**bot_env_vars), tmp_path)
    assert code == 0, out + err
    assert "slack: ok" in out and "redis: ok" in out
    wrong = "sk-wrong-key-that-must-not-leak"
    code, out, err = await _run(["check"], _clean_env(**{**bot_env_vars, "OPENAI_API_KEY": wrong}), tmp_path)
    assert code == 1 and "problem:" in out
    assert wrong not in out + err
    if bot_env_vars.get("THREADBRIDGE_BACKEND", "responses") == "responses":
        # (The assistants backend's model is the assistant's, which `check` looks up instead.)
        openai_emu.models.remove(bot_env_vars["OPENAI_MODEL"])
        code, out, _ = await _run(["check"], _clean_env(**bot_env_vars), tmp_path)
        assert code == 1 and "model 'test-model' is not served" in out
