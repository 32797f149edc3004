"""Structured logging to stderr: one line per event, `key=value` pairs, secrets redacted.

    log = get_logger(__name__)
    log.info("command_done", sender=sender, command="ping", ms=12)
"""
from __future__ import annotations

import logging
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


class _LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields = getattr(record, "fields", {})
        parts = [f"{stamp}.{int(record.msecs):03d}Z", record.levelname, record.name, record.getMessage()]
        parts += [f"{k}={_quote(v)}" for k, v in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


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


def get_logger(name: str) -> StructuredLogger:
    return StructuredLogger(logging.getLogger(name), {})


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("nio", "peewee", "apscheduler", "aiohttp", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
