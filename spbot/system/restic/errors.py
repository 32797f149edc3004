"""restic's failures: classified by exit code and stderr, told in short words without any secret."""
from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from spbot.system.proc import ProcResult

class ResticFailure(StrEnum):
    WRONG_PASSWORD = "wrong_password"
    NO_REPOSITORY = "no_repository"
    LOCKED = "locked"
    UNREACHABLE = "unreachable"
    NO_SPACE = "no_space"
    DAMAGED = "damaged"
    TIMEOUT = "timeout"
    KILLED = "killed"
    NOT_INSTALLED = "not_installed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


_HEADLINES = {
    ResticFailure.WRONG_PASSWORD: "wrong repository password (no key in the repository matches it); "
    "check the password file",
    ResticFailure.NO_REPOSITORY: "there is no restic repository at this location; initialize it "
    "or check the bucket and prefix",
    ResticFailure.LOCKED: "the repository is locked by another restic process; if none is running "
    "it is a stale lock, which `unlock` removes",
    ResticFailure.UNREACHABLE: "the storage endpoint cannot be reached; check the network and "
    "the endpoint address",
    ResticFailure.NO_SPACE: "no space left on device",
    ResticFailure.DAMAGED: "the repository check found errors",
    ResticFailure.INTERRUPTED: "restic was interrupted (exit code 130: it got SIGINT or SIGTERM "
    "and stopped before finishing)",
}

# Checked in this order: a refused connection also prints "Is there a repository ...".
_PATTERNS: list[tuple[ResticFailure, tuple[str, ...]]] = [
    (ResticFailure.LOCKED, ("repository is already locked", "unable to create lock")),
    (ResticFailure.WRONG_PASSWORD, ("wrong password", "no key found")),
    (ResticFailure.NO_SPACE, ("no space left on device",)),
    (ResticFailure.UNREACHABLE, (
        "connection refused", "no such host", "network is unreachable", "no route to host",
        "i/o timeout", "tls handshake timeout", "connection reset", "server misbehaving",
    )),
    (ResticFailure.NO_REPOSITORY, (
        "unable to open config file", "repository does not exist",
        "is there a repository at the following location", "bucket does not exist",
    )),
    (ResticFailure.DAMAGED, ("repository contains errors",)),
]

# restic >= 0.17 documents exit codes for these (doc/075_scripting.rst, "Exit codes"): 10 no
# repository, 11 lock failed, 12 wrong password (0.17.1), 130 interrupted.
_EXIT_CODES = {10: ResticFailure.NO_REPOSITORY, 11: ResticFailure.LOCKED, 12: ResticFailure.WRONG_PASSWORD,
               130: ResticFailure.INTERRUPTED}


class ResticError(Exception):
    """A restic operation failed; the message is short, names the operation and holds no secret."""

    def __init__(self, operation: str, kind: ResticFailure, message: str, returncode: int | None = None):
        super().__init__(message)
        self.operation = operation
        self.kind = kind
        self.returncode = returncode


def scrub(text: str, secrets: Sequence[str]) -> str:
    """Replace every secret value in text with ***, longest first.

    Short secrets (a test password like "pw") are replaced only as whole words, so that
    "password" stays readable; long ones wherever they occur."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        if len(secret) >= 6:
            text = text.replace(secret, "***")
        else:
            text = re.sub(rf"(?<![\w]){re.escape(secret)}(?![\w])", "***", text)
    return text


def classify(result: ProcResult) -> ResticFailure:
    stderr = result.stderr.lower()
    if result.timed_out:
        return ResticFailure.UNREACHABLE if _matches(stderr, ResticFailure.UNREACHABLE) else ResticFailure.TIMEOUT
    if result.returncode < 0:
        return ResticFailure.KILLED
    if result.returncode in _EXIT_CODES:
        return _EXIT_CODES[result.returncode]
    for kind, _ in _PATTERNS:
        if _matches(stderr, kind):
            return kind
    return ResticFailure.FAILED


def _matches(text: str, kind: ResticFailure) -> bool:
    return any(p in text for k, patterns in _PATTERNS if k == kind for p in patterns)


def error_from_result(operation: str, result: ProcResult, secrets: Sequence[str]) -> ResticError:
    kind = classify(result)
    if kind is ResticFailure.TIMEOUT:
        headline = f"timed out after {result.duration:.0f} s"
    elif kind is ResticFailure.KILLED:
        headline = f"restic was killed by {_signal_name(-result.returncode)}"
    elif kind is ResticFailure.UNREACHABLE and result.timed_out:
        headline = f"{_HEADLINES[kind]} (gave up after {result.duration:.0f} s)"
    else:
        headline = _HEADLINES.get(kind, f"restic exited with code {result.returncode}")
    said = last_lines(result.stderr)
    message = f"restic {operation} failed: {headline}" + (f"\nrestic said: {said}" if said else "")
    return ResticError(operation, kind, scrub(message, secrets), result.returncode)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def last_lines(stderr: str, count: int = 3, width: int = 300) -> str:
    lines = [_readable(line) for line in stderr.splitlines() if line.strip()]
    return "\n".join(line[:width] for line in lines[-count:])


def _readable(line: str) -> str:
    """restic writes errors as JSON in --json mode; say them in words."""
    line = line.strip()
    if not line.startswith("{"):
        return line
    try:
        obj = json.loads(line)
    except ValueError:
        return line
    if not isinstance(obj, dict):
        return line
    if obj.get("message_type") == "error" or "error" in obj:
        return describe_error(obj)
    return str(obj.get("message") or line)


# The Go operations behind "could not read": os.PathError's Op for the calls the archiver makes.
_READ_OPS = {"open", "openat", "read", "readdir", "readdirent", "readlink", "lstat", "stat", "getxattr",
             "listxattr", "lgetxattr", "llistxattr"}
_GO_PATH_ERROR = re.compile(r"^(?P<op>[a-z]+) (?P<path>/.*?): (?P<reason>[^:]+)$")


def describe_error(obj: dict[str, Any]) -> str:
    """One `{"message_type": "error", …}` line of `backup --json` in words.

    restic's internal/ui/backup/json.go writes `{"error": <error>, "during", "item"}`. Up to 0.17 the
    error is the Go error value marshalled as is: `{"Op":"open","Path":"/srv/x","Err":13}` for an
    os.PathError (Err is the errno) or `{}` for most others; 0.18 writes `{"message": "open /srv/x:
    permission denied"}`. All become e.g. "could not read /srv/x: permission denied"."""
    error, item = obj.get("error"), str(obj.get("item") or "")
    during = str(obj.get("during") or "")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return _from_message(error["message"], item)
    if isinstance(error, dict) and "Op" in error:
        path = str(error.get("Path") or item)
        return f"{_verb(str(error.get('Op')))} {path}: {_reason(error.get('Err'))}"
    if isinstance(error, str) and error:
        return _from_message(error, item)
    where = f" (while {during})" if during and during != "archival" else ""
    return f"could not read {item or 'an item'}{where}; restic gave no reason"


def _from_message(message: str, item: str) -> str:
    match = _GO_PATH_ERROR.match(message.strip())
    if match:
        return f"{_verb(match['op'])} {match['path']}: {match['reason']}"
    return f"{item}: {message}" if item and item not in message else message


def _verb(op: str) -> str:
    return "could not read" if op in _READ_OPS else f"could not {op}"


def _reason(err: Any) -> str:
    if isinstance(err, int) and not isinstance(err, bool):
        try:
            return os.strerror(err).lower().rstrip(".")
        except ValueError:
            return f"error {err}"
    if isinstance(err, dict) and err:
        return _reason(err.get("Err")) if "Err" in err else json.dumps(err)
    return str(err) if err else "unknown error"
