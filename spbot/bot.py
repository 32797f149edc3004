"""The runtime: wires the parts and reads incoming events. A message travels
sync batch (here) → screen (spbot/screening.py) → trust (spbot/trust.py) → dispatch (spbot/dispatch.py:
lane, parse, policy) → approvals (spbot/approvals.py) → job (spbot/jobs.py) → execute (spbot/execute.py)
→ reply (spbot/messenger.py, spbot/outbox.py) → audit (spbot/audit.py). Each part gets what it needs
when it is built here; none of them knows the bot.

Events are read here from each sync batch, in timeline order, and not through nio's callbacks: nio
saves its sync token before the callbacks run, so a kill or an error would lose the batch. The batch
counts as handled (and the sync position moves on) once each of its commands is durably claimed and
either answered or accepted; the inbox (spbot/inbox.py) says how far each one got."""
from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from typing import Any

from nio import (InviteMemberEvent, JoinResponse, MatrixRoom, MegolmEvent, ReactionEvent, RedactionEvent,
                 RoomGetEventResponse, RoomMessageText, RoomUpgradeEvent, UnknownEvent)

from . import __version__
from .accepted import AcceptedCommands
from .alerts import Alerts
from .approvals import APPROVE_KEYS, DENY_KEYS, Approvals
from .audit import AuditEntry, AuditLog
from .cannot_write import CannotWrite
from .config import Config
from .dispatch import Dispatcher
from .execute import Executor
from .feature import RESTART_TODO, F, Feature, Features
from .inbox import Inbox
from .jobs import JobRunner
from .key_resend import KeyResend
from .late_decryption import LateDecryption
from .logs import get_logger
from .homeserver_errors import NETWORK_ERRORS
from .matrix import Connection, SignedOut
from .messenger import Messenger
from .outbox import Outbox
from .parsing import Addressing
from .policy import Policies
from .refused_rooms import RefusedRooms
from .registry import REGISTRY, CommandSpec, Policy, Registry
from .render import Reply
from .request import Request
from .room_upgrades import RoomFollower, RoomUpgrades
from .scheduler import add_heartbeat, make_scheduler
from .screening import Screen
from .store import Store
from .stuck_reading import StuckReading
from .timeline import Batch
from .trust import Devices, Trust
from .unusable_keys import key_damage_watch
from .system import priority
from . import replay_history, rolled_back, state_loss

log = get_logger(__name__)
SYNC_POSITION_KEY = "sync_position"
FEATURE_ALERT = "feature_start:"       # + the feature's name: an alert while it fails to start


class Bot:
    def __init__(self, config: Config, registry: Registry = REGISTRY, features: list[type[Feature]] = ()):
        self.config = config
        self.registry = registry
        self.started = time.time()
        self.store = Store(config.state_dir / "spbot.db")
        self.connection = Connection(config)
        self.outbox = Outbox(self.store, self.connection)
        self.upgrades = RoomUpgrades(self.store)
        self.messenger = Messenger(self.outbox, self.store, self.connection, config, self.upgrades)
        self.inbox = Inbox(self.store)
        self.audit = AuditLog(self.store, config.host)
        self.devices = Devices(self.store, self.connection)
        self.scheduler = make_scheduler(config.timezone)
        self.policies = Policies(config, registry)
        self.alerts = Alerts(self.store, self.messenger, config, spawn=self.spawn)
        self.jobs = JobRunner(self.store, self.messenger, config, self.spawn)
        self.executor = Executor(self.messenger, self.audit, self.jobs, config.command_prefix, host=self)
        self.approvals = Approvals(
            self.store, self.messenger, self.audit, config, registry, start=self.executor.start_job,
            eligible_approvers=lambda requester: self.trust.eligible_approvers(requester, subject=""),
            preview=lambda spec, args: spec.preview(self, **args),
            before_vote=lambda: self.screen.replay_guard.flush(), spawn=self.spawn)
        self.jobs.on_finish.append(self.approvals.job_finished)
        self.addressing = Addressing.from_config(config, registry)      # which bot of a fleet room answers
        self.dispatcher = Dispatcher(self.messenger, self.audit, registry, self.policies, self.approvals,
                                     self.executor, prefix=config.command_prefix, started=self.started,
                                     addressing=self.addressing)
        self.accepted = AcceptedCommands(self.inbox, self.store, self.messenger, config, self.dispatcher.handle,
                                         self.spawn)
        self.trust = Trust(config, self.store, self.connection, self.devices, self.alerts,
                           self.messenger.notify, self.outbox.send)
        self.connection.step_watchers.append(CannotWrite(self.messenger, self.store, config))
        self.outbox.on_failed.append(RefusedRooms(self.messenger, config.admins, self.spawn).failed)
        self.follower = RoomFollower(self.upgrades, self.connection, self.messenger, self.outbox, config.admins,
                                     self.spawn)
        self.screen: Screen | None = None    # made at start, with the bot's user id
        self.late: LateDecryption | None = None
        self.features = Features(features)
        # Features read the other events of the rooms here (the fleet's own): async (room, event) -> None.
        self.event_hooks: list[Any] = []
        # Modules add lines to !status here: async (bot) -> list[str].
        self.status_sections: list[Any] = []
        self._tasks: set[asyncio.Task] = set()
        self._stop = asyncio.Event()
        self._failures: dict[str, int] = {}
        self._reading = asyncio.Lock()          # one event at a time: batches, late decryptions, refetches
        self._leftovers_checked = False
        self.failure: BaseException | None = None     # why the bot stopped, when it was not asked to
        self._damage = state_loss.DamageWatch(self.store.path, self._stop_with_failure)

    # --- life cycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.start()
        except Exception as exc:
            await self._damage.failed("start", exc)
            if self.failure is None:
                raise
            return
        client = self.connection.client
        self._key_damage = key_damage_watch(self.config.state_dir, client.user_id, client.device_id,
                                            self._stop_with_failure)
        self.connection.step_watchers += [self._damage, self._key_damage, StuckReading(self.alerts)]
        self.store.on_damage = lambda exc: self._damage.check("store", exc)
        self.outbox.on_damage = lambda exc: self._key_damage.check("send", exc)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        sync = asyncio.create_task(self._sync(), name="sync")
        sync.add_done_callback(self._sync_ended)
        self.spawn(self._undecryptable_ticker(), name="undecryptable")
        await self._stop.wait()
        log.info("stopping")
        sync.cancel()
        await asyncio.gather(sync, return_exceptions=True)
        await self.stop()

    async def _sync(self) -> None:
        """The history reads the first sync's screening needs, then the sync loop. They wait for the
        homeserver, so they run here rather than in start(): features (out of band, disk watch) work
        while it is down."""
        client, position = self.connection.client, await self.store.get(SYNC_POSITION_KEY)
        own = await replay_history.ensure_complete(self.screen.replay_guard, client, self.connection.until_done)
        await state_loss.tell_earlier_state(self.store, self.messenger, list(self.config.admins))
        since = await rolled_back.claim_answered_since(self.store, client, position, self.connection.until_done)
        await rolled_back.settle(self, own, since)
        await self.connection.sync_forever(self.handle_batch, position,
                                           lambda token: self.store.put(SYNC_POSITION_KEY, token))

    def _stop_with_failure(self, exc: BaseException) -> None:
        self.failure = exc
        self._stop.set()

    def _sync_ended(self, task: asyncio.Task) -> None:
        """The sync loop only ends when stopping; if it died, stop with a failure (`failure`: the
        process exits non-zero, so that its supervisor starts it again) rather than run on deaf."""
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if self._damage.check("sync", exc) or self._key_damage.check("sync", exc):
                return                                  # the next start sets the file aside and tells
            if isinstance(exc, rolled_back.KeysBehind):
                self.connection.mark_keys_behind()
                log.error("crypto_store_behind", error=str(exc),
                          todo="stopping; the next start sets these keys aside and starts a new device")
            elif isinstance(exc, SignedOut):
                log.error("signed_out", detail=str(exc)[:200],
                          todo="the next start logs in as a new device (with the password file)")
            else:
                log.error("sync_loop_died", error=repr(exc))
            self.failure = exc
            self._stop.set()

    async def start(self) -> None:
        priority.configure(self.config.priority)
        lost = await state_loss.open_or_replace(self.store)
        for part in (self.audit, self.devices, self.alerts, self.inbox, self.upgrades):
            await part.start()
        first_start = await self.store.get("first_start")
        if first_start is None:
            first_start = time.time()
            await self.store.put("first_start", first_start)
        client = await self.connection.login()
        self.key_resend = KeyResend(client)       # a device that lost a key of the bot's gets it again
        self.connection.on_sync.append(self.key_resend.read_key_requests)
        self.screen = Screen(self.config, self.store, client.user_id, first_start, self.upgrades,
                             self.addressing, state_lost_at=await state_loss.lost_at(self.store))
        self.late = LateDecryption(self.screen, self.connection, self.store, self.inbox, self.messenger,
                                   self.config, self._take_late_event)
        await self.outbox.start()
        if lost is not None:
            await self.messenger.notify(state_loss.notice(lost, list(self.config.admins)),
                                        once=f"state-lost-{lost['at']}")
        await self.approvals.start()          # first: the job runner reports interrupted jobs to it
        await self.jobs.start()
        self._refetch_later(await self.accepted.recover())      # commands still waiting for their room key
        self.policies.warn_about_config()
        add_heartbeat(self.scheduler, self.store)
        self.scheduler.start()
        self.connection.on_device_changes = self.trust.forget_cached
        self.spawn(self._after_first_sync(), name="own identity")
        await self.screen.replay_guard.start(client)     # before the first sync: it checks decryptions
        for hook in self.registry.startup_hooks:
            await hook(self)
        await self.features.start(self)
        await self._tell_feature_starts()
        log.info("started", version=__version__, device_id=client.device_id,
                 commands=len(self.registry.commands))

    async def _tell_feature_starts(self) -> None:
        """A feature that failed to start is an alert (the rest of the bot runs); one that starts again
        after such a failure clears it."""
        failed = {kind.name: why for kind, why in self.features.failed.items()}
        for name, why in failed.items():
            await self.alerts.fire(f"{FEATURE_ALERT}{name}", "warning",
                                   f"[{name}] did not start: {why}. Its commands and scheduled work are "
                                   "off; everything else runs.", RESTART_TODO)
        for alert in await self.alerts.active(FEATURE_ALERT):
            name = alert.key.removeprefix(FEATURE_ALERT)
            if name not in failed:
                await self.alerts.clear(alert.key, f"[{name}] started again")

    async def _after_first_sync(self) -> None:
        await self.connection.first_sync_done.wait()
        await asyncio.sleep(0.5)                       # let the first key upload finish
        await self.trust.setup_own_identity()

    async def stop(self) -> None:
        self.scheduler.shutdown(wait=False)
        await self.features.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.outbox.stop()
        await self.trust.close()
        await self.connection.close()
        await self.store.close()

    def feature(self, kind: type[F]) -> F:
        """The running instance of a feature (spbot/features/)."""
        return self.features.get(kind)

    def spawn(self, coro, name: str) -> asyncio.Task:
        """Run work beside the sync loop (a slow command must never hold up the next sync)."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- incoming events -----------------------------------------------------------------------

    async def handle_batch(self, batch: Batch) -> None:
        """Every event of one sync batch, in order. A storage or network error stops the batch (it is
        handled again after a pause; what was done is not redone); another error on the same event
        three times answers it, if it is a command, and goes on."""
        async with self._reading:
            for room, event in batch.events:
                await self._guarded(room, event, self.on_event)
            for room, event in batch.invites:
                if isinstance(event, InviteMemberEvent):
                    await self._guarded(room, event, self.on_invite)
            await self.after_sync()
        if not self._leftovers_checked:
            self._refetch_later(await self.accepted.answer_leftovers())      # votes cut short
            self._leftovers_checked = True

    async def _guarded(self, room: MatrixRoom, event, handler) -> None:
        key = getattr(event, "event_id", None) or f"{room.room_id}/{type(event).__name__}"
        try:
            await handler(room, event)
            self._failures.pop(key, None)
        except (sqlite3.Error, OSError, *NETWORK_ERRORS, ConnectionError):
            raise
        except Exception:
            count = self._failures[key] = self._failures.get(key, 0) + 1
            if count < 3:
                raise
            log.exception("event_not_handled", event=key, attempts=count)
            self._failures.pop(key, None)
            if key == getattr(event, "event_id", None) and await self.inbox.state(key) == "arrived":
                await self.store.claim_event(event.event_id, room.room_id, time.time())
                if event.sender in self.config.admins:
                    await self.messenger.reply_to(room.room_id, event.event_id, Reply.error(
                        "I could not handle this (an internal error, the details are in my log); "
                        "nothing ran.", "Send it again; tell the other admins if it keeps failing."))
                await self.inbox.done(event.event_id)

    async def on_event(self, room: MatrixRoom, event) -> None:
        if isinstance(event, RoomMessageText):
            await self._take_message(room, event)
        elif isinstance(event, MegolmEvent):
            await self._take_undecryptable(room, event)
        elif isinstance(event, ReactionEvent):
            await self._take_reaction(room, event)
        elif isinstance(event, RedactionEvent):
            await self.on_redaction(room, event)
        elif isinstance(event, RoomUpgradeEvent):
            await self.follower.on_tombstone(room.room_id, event, self.screen.room_allowed(room.room_id))
        elif isinstance(event, UnknownEvent) and self.screen.room_allowed(room.room_id):
            for hook in self.event_hooks:
                await hook(room, event)

    def _may_act_on(self, room: MatrixRoom, event) -> bool:
        return event.sender != self.connection.client.user_id and self.screen.room_allowed(room.room_id)

    async def _take_message(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if not (self._may_act_on(room, event) and self.screen.is_command(event.body or "")):
            return await self.on_message(room, event)
        if await self.inbox.begin(event.event_id, room.room_id, event.sender, "command"):
            await self.on_message(room, event)
            await self.inbox.finish_if_arrived(event.event_id)

    async def _take_late_event(self, room: MatrixRoom, event) -> None:
        """A command or vote decrypted at last (after its batch): guarded as in a batch, so that an error
        on it is answered after three tries instead of failing every later batch."""
        await self._guarded(room, event, self.on_event)

    async def _take_reaction(self, room: MatrixRoom, event: ReactionEvent) -> None:
        if not (self._may_act_on(room, event) and event.key in APPROVE_KEYS | DENY_KEYS):
            return await self.on_reaction(room, event)

        async def redo() -> bool:    # a vote is idempotent; an offer taken may have started its command
            return await self.alerts.offered_command(event.reacts_to, room.room_id) is None
        if await self.inbox.begin(event.event_id, room.room_id, event.sender, "reaction", redo):
            await self.on_reaction(room, event)
            await self.inbox.finish_if_arrived(event.event_id)

    async def _take_undecryptable(self, room: MatrixRoom, event: MegolmEvent) -> None:
        await self.late.arrived(room, event)
        if self.late.waiting_for(event.event_id):
            await self.inbox.set(event.event_id, room.room_id, event.sender, "command", "waiting")

    def _refetch_later(self, rows) -> None:
        for row in rows:
            self.spawn(self._refetch(row), name=f"refetch {row['event_id']}")

    async def _refetch(self, row) -> None:
        await self.connection.first_sync_done.wait()
        response = await self.connection.client.room_get_event(row["room_id"], row["event_id"])
        room = self.connection.client.rooms.get(row["room_id"])
        if not isinstance(response, RoomGetEventResponse) or room is None:
            log.warning("event_lost", event_id=row["event_id"], kind=row["kind"])
            return await self.inbox.done(row["event_id"])
        async with self._reading:
            await self.on_event(room, response.event)

    async def on_message(self, room: MatrixRoom, event: RoomMessageText) -> None:
        verdict = await self.screen.message(room, event)
        if verdict.reply is not None:
            await self.messenger.reply_to(room.room_id, event.event_id, verdict.reply)
        if verdict.request is None:
            if verdict.reason not in ("own message", "not a command"):
                log.info("event_dropped", event_id=event.event_id, sender=event.sender,
                         reason=verdict.reason)
            return
        request = verdict.request
        trust = await self.trust.check_sender(event.sender, getattr(event, "sender_key", None))
        request.device_id = trust.device_id
        if not trust.allowed:
            await self.send_reply(request, trust.reply)
            await self.audit.record(AuditEntry(event.sender, request.device_id, room.room_id,
                                               event.event_id, request.text.split()[0], {}, "refused",
                                               f"device {trust.state}"))
            log.warning("device_refused", sender=event.sender, device=request.device_id, state=trust.state)
            return
        announcement = (await self.devices.announce_if_new(event.sender, trust.device_id, trust.cross_signed)
                        if trust.bound else self.devices.announce_unbound(
                            event.sender, getattr(event, "sender_key", None)))
        if announcement is not None:
            await self.outbox.send(room.room_id, announcement.content())
        await self.accepted.start(request)

    async def _undecryptable_ticker(self) -> None:
        while True:
            await self.late.until_due()
            if self.late.undecrypted:
                try:
                    async with self._reading:
                        await self.after_sync()
                except Exception:               # storage trouble: tried again in a moment
                    log.exception("undecryptable_retry_failed")
                    await asyncio.sleep(1.0)

    async def after_sync(self) -> None:
        await self.late.retry()

    async def on_reaction(self, room: MatrixRoom, event: ReactionEvent) -> None:
        if not self.screen.room_allowed(room.room_id) or event.sender not in self.config.admins:
            return await self.approvals.on_reaction(room, event)     # it logs what it ignores
        trust = await self.trust.check_sender(event.sender, getattr(event, "sender_key", None))
        device = trust.device_id
        await self.trust.tell_voter(room.room_id, event, trust)
        if not trust.allowed:
            log.warning("vote_refused", sender=event.sender, device=device, state=trust.state)
            return
        offered = await self.alerts.offered_command(event.reacts_to, room.room_id)
        if offered and event.key in APPROVE_KEYS and getattr(event, "decrypted", False):
            await self.screen.replay_guard.flush()     # the reaction's ciphertext is spent before it acts
            if await self.store.claim_event(event.event_id, room.room_id, time.time()):
                request = Request(event.sender, device, room.room_id, event.reacts_to, offered,
                                  int(time.time() * 1000))
                log.info("alert_offer_taken", sender=event.sender, command=offered)
                self.spawn(self.dispatcher.handle(request), name=f"offer {event.event_id}")
            return
        await self.approvals.on_reaction(room, event)

    async def on_redaction(self, room: MatrixRoom, event: RedactionEvent) -> None:
        if self.screen.room_allowed(room.room_id) and event.sender in self.config.admins:
            await self.approvals.on_redaction(room, event)

    async def on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        if event.state_key != self.connection.client.user_id or event.membership != "invite":
            return
        if event.sender not in self.config.admins:
            log.warning("invite_ignored", room=room.room_id, inviter=event.sender, reason="not an admin")
            return
        if not self.screen.room_allowed(room.room_id):
            log.warning("invite_ignored", room=room.room_id, inviter=event.sender,
                        reason="room not in config (rooms = [...])")
            return
        result = await self.connection.client.join(room.room_id)
        log.info("joined", room=room.room_id, inviter=event.sender, result=type(result).__name__)
        if isinstance(result, JoinResponse):
            await self.follower.joined(room.room_id)

    # --- what features and commands use of the runtime (spbot/feature.py's Host) ----------------

    async def send_reply(self, request: Request, reply: Reply) -> int:
        return await self.messenger.reply(request, reply)

    async def notify(self, reply: Reply, rooms: list[str] | None = None) -> list[int]:
        return await self.messenger.notify(reply, rooms)

    async def direct_message(self, user_id: str, reply: Reply, secret: bool = False) -> int:
        return await self.messenger.direct_message(user_id, reply, secret)

    def admin_rooms(self) -> list[str]:
        return self.messenger.admin_rooms()

    def policy_for(self, spec: CommandSpec) -> Policy:
        return self.policies.configured(spec)

    def uptime(self) -> float:
        return time.time() - self.started

