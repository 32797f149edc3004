"""Structured logging to stderr: one line per event, `key=value` pairs, secrets redacted.

Under systemd (stderr is the journal's stream, `JOURNAL_STREAM`), each line carries its syslog priority
as a `<N>` prefix, so `journalctl -p warning` filters, and no timestamp of its own (the journal has one).
Libraries' log records and Python warnings (nio uses both) come out in the same format.

    log = get_logger(__name__)
    log.info("command_done", sender=sender, command="ping", ms=12)
"""
from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import Any

_SECRETS: set[str] = set()
_TOKEN_PATTERNS = re.compile(r"(syt_[A-Za-z0-9_]+|mct_[A-Za-z0-9_]+|Bearer\s+\S+)")


def register_secret(value: str | None) -> None:
    """Every later log line has this value replaced by ***."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return _TOKEN_PATTERNS.sub("***", text)


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


# logging level → syslog priority (sd-daemon(3) prefixes)
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _LineFormatter(logging.Formatter):
    def __init__(self, journald: bool = False):
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        parts = [record.levelname, record.name, record.getMessage()]
        if not self.journald:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            parts.insert(0, f"{stamp}.{int(record.msecs):03d}Z")
        parts += [f"{k}={_quote(v)}" for k, v in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        line = redact(line)
        if self.journald:
            prefix = f"<{_PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)}>"
            line = "\n".join(prefix + part for part in line.split("\n"))
        return line


def stderr_is_journal() -> bool:
    """Whether stderr is the stream systemd connected to the journal (JOURNAL_STREAM=dev:inode)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{stat.st_dev}:{stat.st_ino}"


class StructuredLogger(logging.LoggerAdapter):
    def log(self, level: int, msg: str, *args: Any, exc_info: Any = None, **fields: Any) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(level, msg, *args, exc_info=exc_info, extra={"fields": fields})

    def debug(self, msg: str, *a: Any, **kw: Any) -> None: self.log(logging.DEBUG, msg, *a, **kw)
    def info(self, msg: str, *a: Any, **kw: Any) -> None: self.log(logging.INFO, msg, *a, **kw)
    def warning(self, msg: str, *a: Any, **kw: Any) -> None: self.log(logging.WARNING, msg, *a, **kw)
    def error(self, msg: str, *a: Any, **kw: Any) -> None: self.log(logging.ERROR, msg, *a, **kw)

    def exception(self, msg: str, *a: Any, **kw: Any) -> None:
        self.log(logging.ERROR, msg, *a, exc_info=True, **kw)


class Budget:
    """At most `most` lines of one kind per `window` seconds, for what outsiders can make the bot log at
    will (a stranger's to-device messages): a flood must not fill the journal, nor have journald drop
    the bot's other lines with it. What was left out is counted in the next line written."""

    def __init__(self, most: int = 20, window: float = 60.0, clock=time.monotonic):
        self.most, self.window, self.clock = most, window, clock
        self._since, self._written, self._left_out = -window, 0, 0

    def take(self) -> int | None:
        """None: leave this line out; else how many were left out before it."""
        now = self.clock()
        if now - self._since >= self.window:
            self._since, self._written = now, 0
        if self._written >= self.most:
            self._left_out += 1
            return None
        self._written += 1
        left_out, self._left_out = self._left_out, 0
        return left_out


def get_logger(name: str) -> StructuredLogger:
    return StructuredLogger(logging.getLogger(name), {})


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter(journald=stderr_is_journal()))
    logging.captureWarnings(True)          # warnings.warn (nio uses it) → the py.warnings logger
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("nio", "peewee", "apscheduler", "aiohttp", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
