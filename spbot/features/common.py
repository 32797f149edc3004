"""Small helpers shared by the features that call outside APIs (server, dns): reading an API token
from its secret (and keeping it out of logs), approval previews that never fail, and progress steps
for the providers' on_progress callbacks."""
from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from ..config import ConfigError, Secret
from ..context import UserError
from ..providers.errors import ProviderError


def read_token(secret: Secret, what: str) -> str:
    try:
        token = secret.read()                  # registered for log redaction there
    except ConfigError as exc:
        raise UserError(f"I cannot read the {what}: {'; '.join(exc.problems)}.",
                        "Fix the token setting in the bot's config file.") from exc
    return token


def tolerant_preview(fn: Callable[..., Awaitable[str]]) -> Callable[..., Awaitable[str]]:
    """An approval preview must not fail: a known problem becomes a warning line."""
    @functools.wraps(fn)
    async def preview(bot: Any, **args: Any) -> str:
        try:
            return await fn(bot, **args)
        except (UserError, ProviderError) as exc:
            return f"⚠️ This will not work as asked: {exc.what}"
    return preview


def progress_steps(job: Any, total: int) -> Callable[[str], Awaitable[None]]:
    """An on_progress callback for the providers: each message is the next of `total` steps."""
    done = 0

    async def step(message: str) -> None:
        nonlocal done
        if job is not None:
            await job.progress(message, fraction=min(done / total, 1.0))
        done += 1
    return step
