"""The configuration loader as an admin meets it: typos get a did-you-mean, every mistake is one line in
plain words (never a traceback), and the environment overrides the file as the README says."""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from spbot import commands
from spbot.config import load_config

from .unit.test_config_example import check as problems

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = (ROOT / "deploy" / "spbot.example.toml").read_text()
BASE = """
homeserver = "http://127.0.0.1:8008"
user_id = "@spbot:localhost"
password = { file = "/nonexistent/password" }
admins = ["@alice:localhost"]
rooms = ["!abc:localhost"]
state_dir = "state"
"""


@pytest.fixture(autouse=True, scope="module")
def all_sections():
    commands.load_all()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("SPBOT_"):
            monkeypatch.delenv(name)


def test_a_misspelt_section_gets_a_did_you_mean(tmp_path):
    assert problems(tmp_path, BASE + "[bakup]\nrepository = \"/srv/repo\"\n") == \
        ["[bakup]: unknown section; did you mean [backup]?"]


def test_a_misspelt_top_level_key_gets_a_did_you_mean(tmp_path):
    assert problems(tmp_path, 'log_levle = "DEBUG"\n' + BASE) == ["log_levle: unknown key; did you mean log_level?"]


def test_a_misspelt_key_inside_a_section_names_its_path(tmp_path):
    found = problems(tmp_path, BASE + "[disk]\nwarn_percnt = 80\n")
    assert len(found) == 1 and found[0].startswith("disk.warn_percnt: unknown key;"), found
    assert "did you mean" in found[0]


def test_a_wrong_time_zone_is_one_line_with_a_suggestion(tmp_path):
    found = problems(tmp_path, BASE + 'timezone = "Europe/Berln"\n')
    assert found == ["timezone: 'Europe/Berln' is not valid: unknown time zone; did you mean Europe/Berlin? "
                     "use a name such as Europe/Berlin or UTC"]


def test_pydantic_words_do_not_reach_the_admin(tmp_path):
    found = problems(tmp_path, BASE.replace('password = { file = "/nonexistent/password" }',
                                            'password = "hunter2"') + 'log_level = "LOUD"\n')
    text = "\n".join(found)
    assert "password: expected a table" in text
    assert 'log_level: \'LOUD\' is not valid: expected one of "DEBUG", "INFO", "WARNING" or "ERROR"' in text
    assert "Input should" not in text and "instance of" not in text and "hunter2" not in text


def test_environment_overrides_the_file_and_reaches_sections(tmp_path, monkeypatch):
    path = tmp_path / "bot.toml"
    path.write_text(BASE + 'log_level = "INFO"\n[disk]\nwarn_percent = 80\n')
    monkeypatch.setenv("SPBOT_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("SPBOT_DISK__WARN_PERCENT", "70")
    monkeypatch.setenv("SPBOT_TEST_WORKERS", "3")            # other tools' variables are left alone
    monkeypatch.setenv("SPBOT_PASSWORD", "the secret itself")  # read by { env = … }, never a setting
    config = load_config(path)
    config.check_sections()
    assert config.log_level == "DEBUG"
    assert config.settings("disk").warn_percent == 70


def test_an_unknown_section_from_the_environment_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SPBOT_BAKUP__REPOSITORY", "/srv/repo")
    assert problems(tmp_path, BASE) == ["[bakup]: unknown section; did you mean [backup]?"]


def test_the_example_config_is_valid(tmp_path):
    assert problems(tmp_path, EXAMPLE) == []


def _mutate(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(lines))
        choice = rng.randrange(6)
        if choice == 0:
            del lines[i]
        elif choice == 1 and lines[i]:
            j = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:j] + rng.choice('=[]{}"\'#,.x0 \\\x00é') + lines[i][j + 1:]
        elif choice == 2:
            lines.insert(i, rng.choice(["[bakup]", "x = 1", "timezone = 5", "admins = []",
                                        "[disk]", "max_command_age = \"-5s\"", "rooms = 3",
                                        "state_dir = { file = 1 }", "[policies.\"x\"]", "approvals = 99"]))
        elif choice == 3 and "=" in lines[i]:
            key = lines[i].split("=")[0]
            lines[i] = key + "= " + rng.choice(['"', "[1, 2]", "true", "1e999", '"9999999999999999999999d"',
                                               "{}", "-1", '"\u202e"'])
        elif choice == 4:
            lines[i] = lines[i][::-1]
        else:
            lines.insert(i, lines[rng.randrange(len(lines))])
    return "\n".join(lines)


def test_mutated_configs_give_lines_never_a_traceback(tmp_path):
    rng = random.Random(1729)
    base = BASE + "\n[disk]\nwarn_percent = 80\n[backup]\n"
    accepted = refused = 0
    for _ in range(1500):
        found = problems(tmp_path, _mutate(base, rng))
        assert all(isinstance(p, str) and p and "\n" not in p and "Traceback" not in p for p in found)
        accepted, refused = accepted + (not found), refused + bool(found)
    assert refused > 500 and accepted > 50


def test_the_cli_prints_one_line_per_problem_and_exits_2(tmp_path):
    path = tmp_path / "bot.toml"
    path.write_text(BASE + 'timezone = "Europe/Berln"\n[bakup]\nx = 1\n')
    result = subprocess.run([sys.executable, "-m", "spbot", "doctor", "--config", str(path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "did you mean [backup]?" in result.stderr + result.stdout
