"""The out-of-band feature: listens to alerts and to the homeserver connection, and wakes only when
something is due (an alert's grace time ends, the connection goes down or comes back)."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from ...cannot_write import cannot_write
from ...feature import Check, Feature
from ...logs import get_logger
from ...render import Reply, human_duration
from .channels import Channel, kinds_of, send_all, subject
from .relay import Item, Relay
from .settings import OutOfBandSettings
from .unwritable import UnwritableWatch

log = get_logger(__name__)
OUTAGE_KEY = "outofband_outage_since"
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class OutOfBandFeature(Feature):
    name = "outofband"
    settings_model = OutOfBandSettings
    settings: OutOfBandSettings

    async def start(self) -> None:
        host = self.host
        self.channels = [Channel(secret.read()) for secret in self.settings.urls]
        self.relay = Relay(host.store, self.channels, self.settings.title)
        await self.relay.start()
        self.connection = host.connection
        self._kick = asyncio.Event()
        self._unstored_outage: float | None = None      # an outage the full disk would not let us record
        self._told_without_disk = False
        host.alerts.listeners.append(self.on_alert)
        if self.channels:
            host.connection.step_watchers.append(UnwritableWatch(self.channels, self.settings,
                                                                 host.config.state_dir))
        self._task = host.spawn(self._run(), name="out of band")

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def status_lines(self) -> list[str]:
        if not self.channels:
            return ["out of band: no channel configured ([outofband] urls)"]
        return [f"out of band: {kinds_of(self.channels)} for {self.settings.severity} alerts"
                f"{' (always)' if self.settings.always else f' after {human_duration(self.settings.grace)}'}"]

    @classmethod
    async def doctor(cls, config) -> list[Check]:
        settings: OutOfBandSettings = config.settings(cls.name)
        if not settings.urls:
            return [Check("warn", "no out-of-band channel: when the homeserver is down, alerts wait for it",
                          "add Apprise URLs under [outofband] urls (e-mail, ntfy, …)")]
        return [Check("ok", f"out-of-band channels: {kinds_of([Channel(s.read()) for s in settings.urls])}")]

    # --- what arrives -------------------------------------------------------------------------

    async def on_alert(self, key: str, severity: str, text: str, message_ids: list[int]) -> None:
        """An alert was posted to the rooms (first time or worse; not reminders)."""
        if not self.channels or SEVERITY_RANK[severity] < SEVERITY_RANK[self.settings.severity]:
            return
        due = time.time() + (0 if self.settings.always else self.settings.grace)
        await self.relay.add("alert", key, text, due, message_ids)
        self._kick.set()

    # --- the loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            seen = (self.connection.online.is_set(), self.connection.offline.is_set())
            try:
                await self._pass(time.time(), *seen)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outofband_pass_failed")
            await self._sleep(*seen)

    async def _pass(self, now: float, online: bool, offline: bool) -> None:
        if online:
            self._unstored_outage, self._told_without_disk = None, False
        await self._track_outage(now, down=offline)
        for item in await self.relay.due(now):
            if item.kind == "alert" and not self.settings.always and await self._delivered(item):
                await self.relay.settle(item, "delivered")
            else:
                await self.relay.send(item)
        if online:
            await self._catch_up(now)

    async def _delivered(self, item: Item) -> bool:
        return not await self.host.outbox.undelivered(item.message_ids)

    async def _sleep(self, was_online: bool, was_offline: bool) -> None:
        """Until a new alert, a change of the connection from what the pass saw (one that came during
        the pass wakes at once), or the next due item."""
        next_due = await self.relay.next_due()
        outage_since = await self.host.store.get(OUTAGE_KEY) or self._unstored_outage
        timeout = None if next_due is None else max(0.0, next_due - time.time())
        if outage_since is not None and was_offline:
            until_grace = outage_since + self.settings.grace - time.time()
            if until_grace > 0:
                timeout = until_grace if timeout is None else min(timeout, until_grace)
        waits = [asyncio.ensure_future(self._kick.wait())]
        waits += [asyncio.ensure_future(event.wait()) for event in self._changes_from(was_online, was_offline)]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        self._kick.clear()

    def _changes_from(self, was_online: bool, was_offline: bool) -> list[asyncio.Event]:
        """Online waits for offline; offline for online; before the first answer (neither), for either."""
        if was_online:
            return [self.connection.offline]
        return [self.connection.online] if was_offline else [self.connection.online, self.connection.offline]

    # --- the homeserver's own outage ----------------------------------------------------------

    async def _track_outage(self, now: float, down: bool) -> None:
        """`down`: syncs fail now (not merely: the first sync has not come yet)."""
        since = await self.host.store.get(OUTAGE_KEY)
        try:
            if down and since is None:
                await self.host.store.put(OUTAGE_KEY, now)
            elif down and now - since >= self.settings.grace and self.channels:
                if await self.relay.find("outage", str(since)) is None:
                    await self.relay.add("outage", str(since), self._outage_text(since), now)
        except Exception as exc:
            if not cannot_write(exc):
                raise
            await self._outage_without_disk(now, since)

    async def _outage_without_disk(self, now: float, since: float | None) -> None:
        """The store cannot be written (its disk is full, and the homeserver on it likely down for that):
        the outage is kept here, and told through the channels directly, once, after the grace time."""
        self._unstored_outage = since or self._unstored_outage or now
        if self._told_without_disk or now - self._unstored_outage < self.settings.grace:
            return
        self._told_without_disk = True
        text = self._outage_text(self._unstored_outage) + " (My own disk is full too: I cannot record anything.)"
        await send_all(self.channels, subject(self.settings.title, text), text)
        log.warning("outofband_sent_without_disk", kind="outage", channels=len(self.channels))

    def _outage_text(self, since: float) -> str:
        return (f"🚨 The homeserver {self.host.config.homeserver} cannot be reached since "
                f"{self._clock(since)}: the family's chat is down, and alerts come here until it is back.")

    def _clock(self, ts: float) -> str:
        return datetime.fromtimestamp(ts, ZoneInfo(self.host.config.timezone)).strftime("%H:%M")

    async def _catch_up(self, now: float) -> None:
        since = await self.host.store.get(OUTAGE_KEY)
        items = await self.relay.to_note()
        lines = []
        if since is not None:
            await self.host.store.put(OUTAGE_KEY, None)
            if now - since >= self.settings.grace:
                lines.append(f"🔌 The homeserver could not be reached for {human_duration(now - since)} "
                             f"({self._clock(since)}–{self._clock(now)}).")
        if items:
            lines.append(f"While the room could not be reached I sent these by {kinds_of(self.channels)}:")
            for item in items:
                lines.append(f"• {item.text.splitlines()[0]} ({self._clock(item.created)}, "
                             f"{', '.join(await self.relay.sent_channels(item))})")
        if lines:
            await self.host.notify(Reply.text("\n".join(lines)))
            await self.relay.noted(items)
            log.info("outofband_caught_up", items=len(items), outage=since is not None)
