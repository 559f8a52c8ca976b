from pathlib import Path

import pytest

from bot.config import DEFAULT_INSTRUCTIONS, ConfigError, load_settings
from bot.inbound import FileRef, Inbound, ThreadKey


def test_inbound_round_trips_through_json() -> None:
    inbound = Inbound(
        key=ThreadKey("T1", "C1", "1.000100"),
        ts="1.000200",
        user="U1",
        text="hi",
        kind="thread_reply",
        event_id="Ev1",
        files=(FileRef(id="F1", name="a.pdf", size=3),),
    )
    assert Inbound.from_json(inbound.to_json()) == inbound


def test_attributed_text_names_the_speaker() -> None:
    inbound = Inbound(ThreadKey("T", "C", "1"), "1", "U1", "hello", "mention", speaker="Alice")
    assert inbound.attributed_text() == "Alice: hello"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "THREADBRIDGE_BACKEND",
        "ASSISTANT_ID",
        "THREADBRIDGE_INSTRUCTIONS",
        "THREADBRIDGE_INSTRUCTIONS_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return monkeypatch


def test_missing_bot_token_names_the_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SLACK_SIGNING_SECRET", "s3cret-value")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "SLACK_BOT_TOKEN" in str(err.value)
    assert "s3cret-value" not in str(err.value)


def test_http_mode_requires_signing_secret(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        load_settings()


def test_socket_mode_needs_no_signing_secret(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    clean_env.setenv("SLACK_APP_TOKEN", "xapp-1")
    settings = load_settings()
    assert settings.socket_mode
    assert settings.system_instructions() == DEFAULT_INSTRUCTIONS


def test_instructions_file_wins(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "i.txt").write_text("Be brief.\n")
    clean_env.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    clean_env.setenv("SLACK_SIGNING_SECRET", "s")
    clean_env.setenv("THREADBRIDGE_INSTRUCTIONS", "ignored")
    clean_env.setenv("THREADBRIDGE_INSTRUCTIONS_FILE", str(tmp_path / "i.txt"))
    assert load_settings().system_instructions() == "Be brief."


def test_assistants_backend_requires_assistant_id(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    clean_env.setenv("SLACK_SIGNING_SECRET", "s")
    clean_env.setenv("THREADBRIDGE_BACKEND", "assistants")
    with pytest.raises(ConfigError, match="ASSISTANT_ID"):
        load_settings()


def test_unknown_file_kind_is_a_clear_configuration_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    clean_env.setenv("SLACK_SIGNING_SECRET", "s")
    clean_env.setenv("THREADBRIDGE_FILE_KINDS", "document,video")
    with pytest.raises(ConfigError, match=r"THREADBRIDGE_FILE_KINDS.*video"):
        load_settings()
