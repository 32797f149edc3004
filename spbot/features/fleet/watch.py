"""Heartbeats and silence. Each bot sends a hidden, encrypted heartbeat on the bots' channel (nothing a
person sees while all is well). A bot not heard from for `silent_after` is reported by one other bot,
once per outage, and its return once: the reporter is the first live host in alphabetical order, and
since several bots may think they are that one (their clocks and views differ), each sends a claim
first; the first claim in the room's order wins, the same for every bot, and only its sender speaks."""
from __future__ import annotations

import time
from typing import Any

from spbot.config import FleetSettings
from spbot.logs import get_logger
from spbot.render import Reply, human_duration

from .wire import FleetEvent, Wire

log = get_logger(__name__)
HEARTBEAT, CLAIM = "heartbeat", "claim"
DOWN_KEY = "fleet:down"
SILENT_ALERT = "fleet_silent:"      # + the peer's host name


class Watch:
    def __init__(self, host: Any, wire: Wire, settings: FleetSettings):
        self.host = host
        self.wire = wire
        self.settings = settings
        self.me = wire.me
        self.peers = sorted(wire.peers)
        now = time.time()
        self.last_heard: dict[str, float] = {h: now for h in self.peers}       # a grace period at start
        self.last_event: dict[str, str] = {}
        self.down: dict[str, dict] = {}              # host → {outage, since, reporter}
        self.claims: dict[tuple[str, str], str] = {}  # (outage, "down"|"up") → the host that won it
        self.sent: set[tuple[str, str]] = set()
        self.ready = False           # until this bot's own first heartbeat left, it judges nobody

    async def start(self) -> None:
        self.down = dict(await self.host.store.get(DOWN_KEY) or {})

    # --- what the others see of this bot ------------------------------------------------------

    async def beat(self) -> None:
        sent = [await self.wire.send(room_id, HEARTBEAT, interval=self.settings.heartbeat_interval)
                for room_id in self.host.admin_rooms()]
        if any(sent) and not self.ready:
            # The grace period starts once this bot is in the room (it may have just joined): the others
            # have had no way to reach it before.
            self.ready = True
            self.last_heard = {h: max(t, time.time()) for h, t in self.last_heard.items()}

    # --- what this bot sees of the others -----------------------------------------------------

    def live(self) -> set[str]:
        now = time.time()
        return {h for h in self.peers if h not in self.down
                and now - self.last_heard[h] <= self.settings.silent_after}

    def silence(self, host: str) -> str:
        if host not in self.last_heard or host in self.live():
            return ""
        return f"silent for {human_duration(time.time() - self.last_heard[host])}"

    def reporter(self, preferred: str | None = None) -> str:
        live = self.live() | {self.me}
        return preferred if preferred in live else min(live)

    async def on_event(self, event: FleetEvent) -> None:
        if event.host != self.me and event.host in self.last_heard:
            self.last_heard[event.host] = max(self.last_heard[event.host], min(event.ts, time.time()))
            self.last_event[event.host] = event.event_id
            if event.host in self.down:
                await self._recovered(event.host)
        if event.kind == CLAIM:
            await self._on_claim(event)

    async def check(self) -> None:
        """Scheduled: claim the report of every peer silent too long, if this bot is the one to say it;
        keep the alerts this bot raised up to date (reminders, and what the quiet hours release, tell
        how long the silence has lasted by then)."""
        now = time.time()
        for peer in self.peers if self.ready else ():
            if peer in self.down or now - self.last_heard[peer] <= self.settings.silent_after:
                continue
            outage = f"{peer}@{self.last_event.get(peer, 'start')}"
            if (outage, "down") in self.claims or self.reporter() != self.me:
                continue
            await self._claim(peer, outage, "down", since=self.last_heard[peer])
        for peer, info in list(self.down.items()) if self.ready else ():
            if info.get("reporter") == self.me:
                await self._silent_alert(peer, info["since"])

    async def _recovered(self, peer: str) -> None:
        info = self.down[peer]
        if (info["outage"], "up") not in self.claims and self.reporter(info.get("reporter")) == self.me:
            await self._claim(peer, info["outage"], "up", since=info["since"])

    async def _claim(self, peer: str, outage: str, state: str, since: float) -> None:
        if (outage, state) in self.sent:
            return
        self.sent.add((outage, state))
        for room_id in self.host.admin_rooms()[:1]:
            await self.wire.send(room_id, CLAIM, about=peer, outage=outage, state=state, since=since)

    async def _on_claim(self, event: FleetEvent) -> None:
        c = event.content
        peer, outage, state, since = c.get("about"), c.get("outage"), c.get("state"), c.get("since")
        if peer not in self.last_heard or state not in ("down", "up") or not isinstance(outage, str) \
                or not isinstance(since, (int, float)):
            return
        if (outage, state) in self.claims:            # a later claim for the same news: it lost
            return
        self.claims[(outage, state)] = event.host
        if state == "down":
            self.down[peer] = {"outage": outage, "since": since, "reporter": event.host}
        else:
            self.down.pop(peer, None)
        await self.host.store.put(DOWN_KEY, self.down)
        if event.host == self.me:
            await self._say(peer, state, since)

    async def _say(self, peer: str, state: str, since: float) -> None:
        """A silent peer is an alert (it rings the admins as [alerts.warning] says, quiet hours and
        reminders included); its return resolves it, or is told plainly when this bot did not raise it
        (the one that did went silent itself meanwhile)."""
        silent = human_duration(max(0.0, time.time() - since))
        log.info("fleet_peer_" + ("silent" if state == "down" else "back"), host=peer, silent=silent)
        if state == "down":
            await self._silent_alert(peer, since)
            return
        back = f"{peer} is back: heard from again after {silent} of silence."
        if not await self.host.alerts.clear(SILENT_ALERT + peer, back):
            await self.host.notify(Reply.text(f"✅ {back}"))

    async def _silent_alert(self, peer: str, since: float) -> None:
        """Raised once; called again while the silence lasts, it posts only when a reminder is due."""
        silent = human_duration(max(0.0, time.time() - since))
        await self.host.alerts.fire(
            SILENT_ALERT + peer, "warning", f"{peer} has not been heard from for {silent}.",
            f"Its bot or its server may be down, or its homeserver cut off; check it (send !on {peer} ping "
            "once it should be back). I will say when it is heard from again.")
