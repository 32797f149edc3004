"""Secrets are read in one place and written in one place (spbot/system/private_files.py, config.Secret):
every secret read is registered for log redaction, and every private file is 0600 from its first byte and
whole or absent."""
from __future__ import annotations

import os
import stat

import pytest

from spbot.config import ConfigError, Secret
from spbot.logs import redact
from spbot.system.private_files import read_secret_line, write_private, write_private_json


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_secret_read_from_a_file_or_the_environment_is_redacted_from_logs(tmp_path, monkeypatch):
    path = tmp_path / "token"
    path.write_text("file-secret-4711\nsecond line\n")
    monkeypatch.setenv("SPBOT_TEST_TOKEN", "env-secret-0815")
    assert Secret(file=path).read() == "file-secret-4711"
    assert Secret(env="SPBOT_TEST_TOKEN").read() == "env-secret-0815"
    assert redact("token file-secret-4711, env env-secret-0815") == "token ***, env ***"


def test_an_unreadable_secret_says_which(tmp_path):
    (tmp_path / "empty").write_text("")
    for secret, problem in [(Secret(file=tmp_path / "empty"), "cannot be read (IndexError)"),
                            (Secret(file=tmp_path / "absent"), "cannot be read (FileNotFoundError)"),
                            (Secret(env="SPBOT_TEST_UNSET_VARIABLE"), "is not set")]:
        with pytest.raises(ConfigError) as caught:
            secret.read()
        assert problem in caught.value.problems[0]


def test_read_secret_line_registers_what_it_read(tmp_path):
    (tmp_path / "restic-password").write_text("  generated-pw-123456  \n")
    assert read_secret_line(tmp_path / "restic-password") == "generated-pw-123456"
    assert redact("restic -p generated-pw-123456") == "restic -p ***"


def test_private_files_are_0600_even_under_an_open_umask_and_replace_the_old_one_whole(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "deep" / "credentials.json"
        write_private_json(path, {"access_token": "a"})
        assert mode(path) == 0o600 and path.read_text() == '{"access_token": "a"}'
        path.chmod(0o644)
        write_private(path, b"new")
        assert mode(path) == 0o600 and path.read_bytes() == b"new"
    finally:
        os.umask(old)
    assert sorted(p.name for p in path.parent.iterdir()) == ["credentials.json"]   # no temporary left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "key"
    write_private(path, "old")
    with pytest.raises(TypeError):
        write_private(path, 12345)          # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["key"]
