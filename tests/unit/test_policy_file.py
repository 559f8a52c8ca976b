"""The configuration file: effective per-channel settings, and one clear line per problem."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.attachments import FileKind
from bot.budgets import budget_day
from bot.config_file import Limits, PolicyError, Reset, load
from bot.policy import Policy
from tests.harness import settings_from

BASE = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}

FULL = """
default:
  instructions: Be brief.
  model: gpt-4.1-mini
  respond_to: thread_replies
channels:
  C0SUPPORT:
    instructions_file: support.md
    model: gpt-4.1
    tools: [current_time]
    file_kinds: [document]
    code_interpreter: false
    budget:
      user_daily_tokens: 1000
  "#random":
    enabled: false
access:
  teams: {allow: [T0TEAM]}
  channels: {deny: ["#secret"]}
  users: {deny: [U0BAD]}
  external_users: false
  guests: true
budgets:
  user_daily_tokens: 50000
  team_daily_turns: 400
  reset_hour: 6
  timezone: Europe/Berlin
  exempt_users: [U0ADMIN]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "threadbridge.yml"
    path.write_text(text)
    return path


def _load(path: Path, **env: str):
    return load(settings_from({**BASE, "THREADBRIDGE_CONFIG": str(path), **env}), ["current_time"])


def test_channel_entry_overrides_the_default_entry(tmp_path: Path) -> None:
    (tmp_path / "support.md").write_text("You are the support desk.\n")
    config = _load(_write(tmp_path, FULL))
    support = config.for_channel("C0SUPPORT")
    assert support.instructions == "You are the support desk."
    assert support.model == "gpt-4.1"
    assert support.tools == frozenset({"current_time"})
    assert support.file_kinds == frozenset({FileKind.DOCUMENT})
    assert support.code_interpreter is False
    assert support.limits == Limits(user_tokens=50000, team_turns=400, channel_user_tokens=1000)
    other = config.for_channel("C0ELSE")
    assert (other.instructions, other.model, other.enabled) == ("Be brief.", "gpt-4.1-mini", True)
    assert config.for_channel("C0RND", "random").enabled is False
    assert config.uses_names
    assert config.reset == Reset(6, "Europe/Berlin")
    assert config.exempt_users == frozenset({"U0ADMIN"})
    assert not config.access.channels.permits("C0X", "#secret")
    assert config.access.teams.permits("T0TEAM") and not config.access.teams.permits("T0OTHER")


def test_env_shortcuts_fill_what_the_file_leaves_out(tmp_path: Path) -> None:
    config = _load(
        _write(tmp_path, "default:\n  model: gpt-4o\n"),
        THREADBRIDGE_ALLOWED_USERS="U1, U2",
        THREADBRIDGE_TEAM_DAILY_TOKENS="900",
    )
    assert config.access.users.allow == frozenset({"U1", "U2"})
    assert config.default.limits.team_tokens == 900


def test_every_problem_is_one_line_naming_the_file_and_the_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
default:
  modle: gpt-4o
channels:
  general:
    model: gpt-4o
  C0ONE:
    instructions: hi
    instructions_file: missing.md
    tools: [no_such_tool]
    file_kinds: [video]
    respond_to: always
budgets:
  timezone: Mars/Olympus
  user_daily_tokens: 0
""",
    )
    with pytest.raises(PolicyError) as caught:
        _load(path)
    problems = caught.value.problems
    assert all(p.startswith(f"{path}: ") for p in problems), problems
    joined = "\n".join(problems)
    for key in ("default.modle", "channels.C0ONE.respond_to", "budgets.user_daily_tokens"):
        assert f": {key}: " in joined, joined


def test_semantic_problems_name_their_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
channels:
  general:
    model: gpt-4o
  C0ONE:
    instructions: hi
    instructions_file: missing.md
  C0TWO:
    tools: [no_such_tool]
    file_kinds: [video]
access:
  channels:
    deny: [general]
budgets:
  timezone: Mars/Olympus
""",
    )
    with pytest.raises(PolicyError) as caught:
        _load(path)
    joined = "\n".join(caught.value.problems)
    assert "access.channels.deny.0: 'general' is not a channel id or #name" in joined
    assert "channels.general: not a channel id" in joined
    assert "channels.C0ONE: set instructions or instructions_file, not both" in joined
    assert "channels.C0TWO.tools: unknown tool(s) ['no_such_tool']" in joined
    assert "channels.C0TWO.file_kinds: unknown file kind(s) ['video']" in joined
    assert "budgets.timezone: unknown time zone 'Mars/Olympus'" in joined


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "default:\n  model: [unclosed\n")
    with pytest.raises(PolicyError) as caught:
        _load(path)
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}: line ")
    assert "not valid YAML" in problem


def test_budget_day_turns_at_the_reset_hour_in_its_zone() -> None:
    berlin = Reset(6, "Europe/Berlin")
    before = datetime(2026, 7, 1, 3, 59, tzinfo=UTC).timestamp()  # 05:59 in Berlin (summer)
    after = datetime(2026, 7, 1, 4, 0, tzinfo=UTC).timestamp()  # 06:00 in Berlin
    assert budget_day(berlin, before).label == "2026-06-30"
    assert budget_day(berlin, after).label == "2026-07-01"
    assert budget_day(berlin, after).resets_at == datetime(2026, 7, 2, 4, 0, tzinfo=UTC)


def test_safety_identifier_is_a_stable_salted_hash() -> None:
    one = Policy(settings_from({**BASE, "THREADBRIDGE_SAFETY_SALT": "pepper"}))
    two = Policy(settings_from({**BASE, "THREADBRIDGE_SAFETY_SALT": "salt"}))
    assert one.safety_identifier("U0ALICE") == one.safety_identifier("U0ALICE")
    assert one.safety_identifier("U0ALICE") != two.safety_identifier("U0ALICE")
    assert "U0ALICE" not in one.safety_identifier("U0ALICE")


def test_readme_example_is_a_valid_configuration(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Configuration file", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "support.md").write_text("Support desk.\n")
    config = _load(_write(tmp_path, example))
    assert config.for_channel("C0123SUPPORT").instructions == "Support desk."
    assert config.for_channel("C0XYZ", "random").enabled is False
    assert config.reset == Reset(6, "Europe/Berlin")
