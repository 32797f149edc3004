"""A service's log for chat: the journal of its units (journalctl) or its containers' output (docker
logs), with passwords, tokens and keys masked, and long output cut to its end with a summary."""
from __future__ import annotations

import os
import re
import shutil

from spbot.logs import redact
from spbot.system.proc import ProcError, run
from spbot.system.services import ServiceError

from .definition import Definition
from .state import Controller

SHOWN_LINES = 40
SHOWN_CHARS = 6000
_SINCE = re.compile(r"^(\d{1,5})([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_MASKS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    # key=value, key: value, "key": "value" for anything that names a secret
    (re.compile(r"(?i)\b([\w-]*(?:password|passwd|secret|token|api[_-]?key|private[_-]?key|credential|"
                r"auth|session|cookie)[\w-]*)([\"']?\s*[:=]\s*[\"']?)(?!(?:bearer|basic)\s)([^\s\"'&,;}]+)"),
     r"\1\2***"),
    (re.compile(r"(://[^/\s:@]+):[^/\s@]+@"), r"\1:***@"),                        # URL credentials
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), "***"),   # JWTs
    (re.compile(r"\b(syt|mct|ghp|gho|glpat|xox[bap])_[A-Za-z0-9_-]{8,}"), "***"),      # known token shapes
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S),
     "*** private key ***"),
]


def mask(text: str) -> str:
    """Passwords, tokens, keys and URL credentials replaced by ***, plus every registered secret."""
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return redact(text)


def since_seconds(value: str | None) -> int | None:
    """'90s', '30m', '1h', '2d' → seconds; ValueError for anything else."""
    if value is None:
        return None
    match = _SINCE.match(value.strip())
    if not match:
        raise ValueError(f"--since {value!r}: expected a time such as 30m, 1h or 2d")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def summarise(text: str, lines: int) -> tuple[str, str]:
    """(the lines to show, a header line): the end of the log when it is long, with its size and how
    many of its lines look like errors or warnings."""
    all_lines = [line for line in text.splitlines() if line.strip()]
    shown = all_lines[-SHOWN_LINES:]
    while len("\n".join(shown)) > SHOWN_CHARS and len(shown) > 5:
        shown = shown[1:]
    bad = sum(1 for line in all_lines if re.search(r"(?i)\b(error|fail\w*|critical|fatal|warn\w*|panic)\b", line))
    head = f"{len(all_lines)} line(s)" + (f", {bad} with errors or warnings" if bad else "")
    if len(shown) < len(all_lines):
        head += f"; the last {len(shown)} shown"
    return "\n".join(shown), head


async def journal(controller: Controller, spec: Definition, lines: int, since: int | None) -> str:
    """The raw (unmasked) log of the service: its units' journal, or its containers' output."""
    parts = []
    if spec.journal_units:
        parts.append(await _journalctl(controller, spec.journal_units, lines, since))
    if spec.in_containers:
        for name in await controller.containers(spec):
            out = await controller.docker.logs(name, lines, since)
            parts.append("\n".join(f"{name}: {line}" for line in out.splitlines()))
    return "\n".join(p for p in parts if p)


async def _journalctl(controller: Controller, units: list[str], lines: int, since: int | None) -> str:
    search = controller.tool_path if controller.tool_path is not None else os.environ.get("PATH", "")
    exe = shutil.which("journalctl", path=search)
    if exe is None:
        raise ServiceError("journalctl is not installed (not found on PATH)")
    argv = [exe, "--no-pager", "--output=short-iso", f"--lines={lines}"]
    argv += [f"--since=-{since}s"] if since else []
    for unit in units:
        argv += ["--unit", unit]
    try:
        result = await run(argv, timeout=controller.timeout * 2, env={**os.environ, "PATH": search, "LC_ALL": "C",
                                                                      "SYSTEMD_COLORS": "0"})
    except ProcError as exc:
        raise ServiceError(str(exc)) from exc
    if not result.ok:
        raise ServiceError(f"journalctl failed (exit {result.returncode}): {result.tail(2)}")
    return result.stdout
