"""[heartbeat]: `url` is pinged every `interval` (success); work that reports through it (backups) sends
`url/start` before and `url` or `url/fail` (with the reason as body) after, as healthchecks.io reads them.
The URL is a secret (whoever has it can ping): it never reaches the log or the room."""
from __future__ import annotations

import time

from pydantic import ConfigDict, Field

from ...config import Duration, Secret, config_section
from ...feature import Check, Feature, Scheduled
from ...logs import get_logger
from ...render import human_duration
from spbot.model import Model

log = get_logger(__name__)
TIMEOUT = 10.0


@config_section("heartbeat")
class HeartbeatSettings(Model):
    """[heartbeat]: a dead man's switch: the bot pings a monitoring service while it runs, so that service
    tells you when the bot (or the whole server) has stopped."""
    model_config = ConfigDict(extra="forbid")
    url: Secret | None = Field(
        None, examples=[{"file": "/etc/spbot/heartbeat-url"}],
        description="A healthchecks.io-compatible ping URL (e.g. https://hc-ping.com/<uuid>), from a file or "
                    "an environment variable. Absent: no heartbeat.")
    interval: Duration = Field(300.0, description="How often the bot pings while it runs.")


class HeartbeatFeature(Feature):
    name = "heartbeat"
    settings_model = HeartbeatSettings
    settings: HeartbeatSettings

    async def start(self) -> None:
        self.url = self.settings.url.read().rstrip("/") if self.settings.url else None
        self.last: tuple[float, str] | None = None

    def scheduled(self) -> list[Scheduled]:
        if self.url is None:
            return []
        return [Scheduled("heartbeat-ping", "heartbeat ping", self.alive, interval=self.settings.interval,
                          first_in=1)]

    async def alive(self) -> None:
        await self._ping("")

    async def started(self, what: str) -> None:
        await self._ping("/start", f"{what} started")

    async def finished(self, what: str, error: str | None = None) -> None:
        await self._ping("/fail" if error else "", f"{what} failed: {error}" if error else f"{what} done")

    async def _ping(self, suffix: str, body: str = "") -> None:
        if self.url is None:
            return
        import httpx
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                response = await http.post(self.url + suffix, content=body.encode()[:10_000])
            ok = response.status_code < 300
        except httpx.HTTPError as exc:
            ok, response = False, exc.__class__.__name__
        self.last = (time.time(), "ok" if ok else "failed")
        if not ok:
            log.warning("heartbeat_ping_failed", kind=suffix or "/", result=str(getattr(response, "status_code",
                                                                                      response)))

    async def status_lines(self) -> list[str]:
        if self.url is None:
            return []
        if self.last is None:
            return [f"heartbeat: every {human_duration(self.settings.interval)}, not pinged yet"]
        when, result = self.last
        return [f"heartbeat: every {human_duration(self.settings.interval)}, last ping "
                f"{human_duration(time.time() - when)} ago ({result})"]

    @classmethod
    async def doctor(cls, config) -> list[Check]:
        settings: HeartbeatSettings = config.settings(cls.name)
        if settings.url is None:
            return [Check("warn", "no heartbeat URL: nobody outside notices if the whole server is gone",
                          "set [heartbeat] url to a healthchecks.io (or compatible) ping URL")]
        return [Check("ok", f"heartbeat every {human_duration(settings.interval)}")]
