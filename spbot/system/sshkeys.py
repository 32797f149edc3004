"""Root's authorized_keys: list, add and remove keys, validated by the real ssh-keygen, written atomically.

Every change keeps the previous file as `authorized_keys.bak`, writes a temporary file in the same
directory (fsync, 0600, owner and group kept) and renames it over the old one, so a crash or a full
disk leaves either the old file or the new one, never half of one. Lines the bot does not manage
(comments, keys with options, keys of other types) are kept as they are.

Error messages are safe to show in chat: they name a key only by type, fingerprint and comment.
"""
from __future__ import annotations

import asyncio
import os
import re
import stat
from pathlib import Path


from spbot.system.private_files import write_private
from spbot.system.proc import ProcError, run
from spbot.model import Model

# Key type in the file -> the name ssh-keygen prints for it.
ALLOWED_TYPES: dict[str, str] = {
    "ssh-ed25519": "ED25519",
    "sk-ssh-ed25519@openssh.com": "ED25519-SK",
    "ecdsa-sha2-nistp256": "ECDSA",
    "ecdsa-sha2-nistp384": "ECDSA",
    "ecdsa-sha2-nistp521": "ECDSA",
    "sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK",
    "ssh-rsa": "RSA",
}
_KEY_TYPE = re.compile(r"^(?:ssh|ecdsa|sk|rsa)-[A-Za-z0-9@._-]+$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,3}$")
_FINGERPRINT = re.compile(r"^(?:SHA256:)?([A-Za-z0-9+/]{43})=?$")
_KEYGEN_LINE = re.compile(r"^(\d+) (SHA256:[A-Za-z0-9+/]{43}) .* \(([A-Z0-9-]+)\)$")
_HOW_TO = "paste one public key line as printed by `cat ~/.ssh/id_ed25519.pub`"

_locks: dict[str, asyncio.Lock] = {}
_KEYGEN_CONCURRENCY = 8


class SshKeysParams(Model):
    path: Path = Path("/root/.ssh/authorized_keys")
    ssh_keygen: str = "ssh-keygen"
    timeout: float = 15.0
    min_rsa_bits: int = 3072
    backup_suffix: str = ".bak"
    max_line_length: int = 8192
    env: dict[str, str] | None = None


class AuthorizedKey(Model):
    line_no: int
    key_type: str  # as written in the file, e.g. "ssh-ed25519"
    kind: str  # as ssh-keygen names it, e.g. "ED25519", "RSA", "ECDSA-SK"
    bits: int
    fingerprint: str  # "SHA256:..."
    comment: str = ""
    options: str = ""  # options before the key type (from="...", command="..."), if any


class SshKeyError(Exception):
    """Base of every error here; the message is safe to show in chat."""


class InvalidKey(SshKeyError):
    """Not a readable public key line (or not a fingerprint, for remove)."""


class KeyNotAllowed(SshKeyError):
    """A readable key the policy refuses: weak or unsupported type, options, forced command."""


class DuplicateKey(SshKeyError):
    """The key is already authorized."""


class KeyNotFound(SshKeyError):
    """No authorized key has that fingerprint."""


class KeyFileError(SshKeyError):
    """authorized_keys could not be read or written; the old file is still in place."""


class _Line(Model):
    options: str
    key_type: str
    blob: str
    comment: str


class AuthorizedKeys:
    """One authorized_keys file (root's by default)."""

    def __init__(self, params: SshKeysParams | None = None):
        self.params = params or SshKeysParams()
        self.path = Path(self.params.path)

    async def list(self) -> list[AuthorizedKey]:
        """Keys in the file, in file order; lines ssh-keygen cannot read are left out."""
        return await self._entries(await asyncio.to_thread(self._read_lines))

    async def add(self, key_line: str) -> AuthorizedKey:
        """Validate one public key line and append it; returns the key as listed."""
        parsed = self._parse_candidate(key_line)
        key = await self._validated(parsed, line_no=0)
        async with self._lock():
            lines = await asyncio.to_thread(self._read_lines)
            key.line_no = len(lines) + 1
            for other in await self._entries(lines):
                if other.fingerprint == key.fingerprint:
                    raise DuplicateKey(f"this key is already authorized ({_describe(other)})")
            await asyncio.to_thread(self._write_lines, [*lines, _format_line(parsed)])
            return key

    async def remove(self, fingerprint: str) -> list[AuthorizedKey]:
        """Remove every line holding the key with this SHA256 fingerprint; returns what was removed."""
        wanted = normalize_fingerprint(fingerprint)
        async with self._lock():
            lines = await asyncio.to_thread(self._read_lines)
            removed = [k for k in await self._entries(lines) if k.fingerprint == wanted]
            if not removed:
                raise KeyNotFound(f"no authorized key has the fingerprint {wanted}")
            drop = {k.line_no for k in removed}
            kept = [line for no, line in enumerate(lines, 1) if no not in drop]
            await asyncio.to_thread(self._write_lines, kept)
            return removed

    # -- validation -------------------------------------------------------------------------

    def _parse_candidate(self, key_line: str) -> _Line:
        text = key_line.strip()
        if not text:
            raise InvalidKey(f"no key given; {_HOW_TO}")
        if "BEGIN SSH2 PUBLIC KEY" in text:
            raise InvalidKey("that is the SSH2/PuTTY format; in PuTTYgen copy the box 'Public key for "
                             "pasting into OpenSSH authorized_keys file' instead")
        if "PRIVATE KEY" in text or text.startswith("PuTTY-User-Key-File"):
            raise InvalidKey("that is a PRIVATE key: never share it. Send the .pub file's line instead, "
                             "and consider the pasted private key leaked")
        if "\n" in text or "\r" in text:
            raise InvalidKey(f"one key at a time, on one line; {_HOW_TO}")
        if len(text) > self.params.max_line_length:
            raise InvalidKey(f"that line is too long to be a public key; {_HOW_TO}")
        parsed = split_key_line(text)
        if parsed is None:
            raise InvalidKey(f"not an SSH public key line; {_HOW_TO}")
        if parsed.options:
            raise KeyNotAllowed("options or a forced command before the key type are not accepted; "
                                "send the plain key: type, key and comment")
        if parsed.key_type not in ALLOWED_TYPES:
            raise KeyNotAllowed(f"{parsed.key_type} keys are not accepted; use ed25519 "
                                f"(ssh-keygen -t ed25519), ecdsa, or RSA of at least "
                                f"{self.params.min_rsa_bits} bits")
        return parsed

    async def _validated(self, parsed: _Line, line_no: int) -> AuthorizedKey:
        key = await self._fingerprint(parsed, line_no)
        if key is None:
            raise InvalidKey(f"ssh-keygen cannot read this {parsed.key_type} key "
                             "(incomplete or damaged copy?)")
        if key.kind != ALLOWED_TYPES[parsed.key_type]:
            raise InvalidKey(f"the key data does not match its type {parsed.key_type}")
        if key.kind == "RSA" and key.bits < self.params.min_rsa_bits:
            raise KeyNotAllowed(f"this RSA key has {key.bits} bits; at least {self.params.min_rsa_bits} "
                                "are required (better: ssh-keygen -t ed25519)")
        return key

    async def _entries(self, lines: list[str]) -> list[AuthorizedKey]:
        limit = asyncio.Semaphore(_KEYGEN_CONCURRENCY)

        async def one(parsed: _Line, line_no: int) -> AuthorizedKey | None:
            async with limit:
                return await self._fingerprint(parsed, line_no)

        parsed = [(no, split_key_line(line)) for no, line in enumerate(lines, 1)]
        jobs = [one(p, no) for no, p in parsed if p is not None]
        return [k for k in await asyncio.gather(*jobs) if k is not None]

    async def _fingerprint(self, parsed: _Line, line_no: int) -> AuthorizedKey | None:
        """Ask ssh-keygen for bits, fingerprint and type of one key; None if it cannot read it."""
        argv = [self.params.ssh_keygen, "-l", "-E", "sha256", "-f", "-"]
        stdin = f"{parsed.key_type} {parsed.blob}\n".encode()
        try:
            result = await run(argv, timeout=self.params.timeout, env=self.params.env, stdin_data=stdin)
        except ProcError as exc:
            raise SshKeyError(f"cannot check keys: {exc}") from exc
        match = _KEYGEN_LINE.match(result.stdout.strip()) if result.ok else None
        if match is None:
            return None
        return AuthorizedKey(line_no=line_no, key_type=parsed.key_type, kind=match[3],
                             bits=int(match[1]), fingerprint=match[2], comment=parsed.comment,
                             options=parsed.options)

    # -- the file ---------------------------------------------------------------------------

    def _lock(self) -> asyncio.Lock:
        return _locks.setdefault(str(self.path.absolute()), asyncio.Lock())

    def _read_lines(self) -> list[str]:
        try:
            if self.path.is_symlink():
                raise KeyFileError(f"{self.path} is a symbolic link; refusing to manage it")
            return self.path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise KeyFileError(f"cannot read {self.path}: {exc.strerror}") from exc

    def _write_lines(self, lines: list[str]) -> None:
        data = "".join(f"{line}\n" for line in lines).encode("utf-8", "surrogateescape")
        try:
            ensure_private_dir(self.path.parent)
            owner = _owner_of(self.path) or _owner_of(self.path.parent)
            if self.path.exists():
                backup = self.path.with_name(self.path.name + self.params.backup_suffix)
                write_atomically(backup, self.path.read_bytes(), owner)
            write_atomically(self.path, data, owner)
        except OSError as exc:
            raise KeyFileError(f"could not write {self.path} ({exc.strerror or exc}); "
                               "the previous file is unchanged") from exc


def split_key_line(line: str) -> _Line | None:
    """Split an authorized_keys line into options, type, base64 key and comment; None if it is not one."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    first, rest = _first_field(text)
    options = ""
    if not _KEY_TYPE.match(first):
        options, (first, rest) = first, _first_field(rest)
        if not _KEY_TYPE.match(first):
            return None
    blob, _, comment = rest.partition(" ")
    if not _BASE64.match(blob):
        return None
    return _Line(options=options, key_type=first, blob=blob, comment=_clean_comment(comment))


def normalize_fingerprint(text: str) -> str:
    """'SHA256:abc…' or 'abc…' -> 'SHA256:abc…'; InvalidKey if it is not a SHA256 fingerprint."""
    match = _FINGERPRINT.match(text.strip())
    if match is None:
        raise InvalidKey("that is not a SHA256 fingerprint (like SHA256:V9DkJ4Sl…, 43 characters "
                         "after the colon); see the key list")
    return f"SHA256:{match[1]}"


def ensure_private_dir(directory: Path) -> None:
    """Create the .ssh directory 0700 (owned like its parent) if it is missing."""
    if directory.is_dir():
        return
    directory.mkdir(mode=0o700)
    os.chmod(directory, 0o700)
    owner = _owner_of(directory.parent)
    if owner is not None and owner != _owner_of(directory):
        os.chown(directory, *owner)


def write_atomically(path: Path, data: bytes, owner: tuple[int, int] | None) -> None:
    """Write `data` to a temporary file beside `path` (fsync, 0600, owner), then rename it over `path`."""
    write_private(path, data, owner=owner)


def _owner_of(path: Path) -> tuple[int, int] | None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return None
    return st.st_uid, st.st_gid


def _first_field(text: str) -> tuple[str, str]:
    """The first whitespace-separated field (double quotes may hold spaces) and the rest."""
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"' and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif ch in " \t" and not quoted:
            return text[:i], text[i:].strip()
    return text, ""


def _clean_comment(comment: str) -> str:
    printable = "".join(ch if ch.isprintable() else " " for ch in comment)
    return " ".join(printable.split())[:200]


def _format_line(parsed: _Line) -> str:
    return " ".join(part for part in (parsed.key_type, parsed.blob, parsed.comment) if part)


def _describe(key: AuthorizedKey) -> str:
    return f"{key.fingerprint} {key.comment}".strip()
