"""A disk that cannot be written at start (full, read-only, failing). Before, the bot stopped with a
traceback, systemd started it again five seconds later, and so on, and nobody was told: with the
homeserver on the same full disk, not even the room could hear it. Now: one plain line in the journal,
one message through the out-of-band channels ([outofband]: e-mail, ntfy…, which need no disk here), and
the process waits, trying a write every few seconds, instead of being started again and again. Once a
write works it ends with status 1, and systemd starts it as usual."""
from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

from .cannot_write import reason, usage, writable

PROBE_EVERY = 10.0         # s between write attempts while waiting


def wait_until_writable(config, exc: BaseException) -> int:
    text = (f"I cannot write to my state directory {config.state_dir} ({reason(exc)}) on "
            f"{socket.gethostname()}, so I did not start; nothing ran. {usage(config.state_dir)} Free space "
            f"there (df -h {config.state_dir}): I start by myself once I can write.")
    print(f"spbot: {text}", file=sys.stderr, flush=True)
    asyncio.run(_tell_and_wait(config, text))
    print(f"spbot: I can write to {config.state_dir} again: starting", file=sys.stderr, flush=True)
    return 1


async def _tell_and_wait(config, text: str) -> None:
    await _tell_out_of_band(config, text)
    while not writable(Path(config.state_dir)):
        await asyncio.sleep(PROBE_EVERY)


async def _tell_out_of_band(config, text: str) -> None:
    from .features.outofband.channels import Channel, send_all
    settings = config.settings("outofband")
    channels = []
    for secret in settings.urls:
        try:
            channels.append(Channel(secret.read()))
        except Exception:            # an unreadable secret file: `spbot doctor` says which
            continue
    await send_all(channels, f"{settings.title}: cannot start", text)
