"""One Apprise URL = one channel. A channel is named by its scheme and a short hash: the URL holds
passwords and tokens, so it never reaches a log, the state store or the room."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from ...logs import get_logger

log = get_logger(__name__)
logging.getLogger("apprise").setLevel(logging.CRITICAL)    # it logs URLs (with their secrets) on errors

KINDS = {"mailto": "e-mail", "mailtos": "e-mail", "ntfy": "ntfy", "ntfys": "ntfy", "gotify": "Gotify",
         "gotifys": "Gotify", "signal": "Signal", "signals": "Signal", "tgram": "Telegram",
         "json": "web hook", "jsons": "web hook", "form": "web hook", "forms": "web hook"}


@dataclass(frozen=True)
class Channel:
    url: str

    @property
    def id(self) -> str:
        return hashlib.sha256(self.url.encode()).hexdigest()[:12]

    @property
    def kind(self) -> str:
        scheme = self.url.split("://", 1)[0].lower()
        return KINDS.get(scheme, scheme)

    async def send(self, title: str, body: str) -> bool:
        import apprise                               # loaded only when a channel is configured and used
        sender = apprise.Apprise()
        if not sender.add(self.url):
            log.error("outofband_url_invalid", channel=self.kind, id=self.id)
            return False
        try:
            return bool(await sender.async_notify(title=title, body=body))
        except Exception as exc:                     # a plugin's network error must not end the relay
            log.warning("outofband_send_failed", channel=self.kind, id=self.id, error=exc.__class__.__name__)
            return False


def subject(title: str, text: str) -> str:
    """A message's subject: the title, then its text's first line."""
    return f"{title}: {text.splitlines()[0][:120]}"


async def send_all(channels: list[Channel], title: str, text: str) -> None:
    """Through every channel directly, nothing recorded (the relay records; this is for when it cannot)."""
    for channel in channels:
        await channel.send(title, text)


def kinds_of(channels: list[Channel]) -> str:
    kinds = list(dict.fromkeys(c.kind for c in channels))
    return ", ".join(kinds) if kinds else "no channel"
