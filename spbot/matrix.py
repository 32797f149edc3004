"""The bot's Matrix connection: one persistent device (crypto store + stored access token), a sync loop
that survives homeserver outages, and the key upkeep E2EE needs. It never logs out: that would destroy
the device's keys."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Awaitable, Callable

from nio import (AsyncClient, AsyncClientConfig, KeysQueryResponse, LoginResponse,
                 SyncResponse, WhoamiResponse)
from aiohttp import ClientConnectionError

from . import nio_fixes
from .homeserver_errors import offline
from .homeserver_restored import position_to_resume
from .config import Config
from .unusable_keys import SET_ASIDE_AS, mark_behind, marked_unusable
from .key_files import crypto_dir, key_file
from .trust.pickle_key import CryptoKeyError, ready_pickle_key
from .logs import get_logger, register_secret
from .system.private_files import write_private_json
from .session_renewal import RenewalRefused, cannot_replace, login_same_device, recover_stored_device
from .store import is_damage, set_aside
from .trust.errors import HomeserverError
from .timeline import SYNC_FILTER, Batch, fresh, read_batch
from .watchers import tell_each

log = get_logger(__name__)
nio_fixes.apply()

SYNC_TIMEOUT_MS = 30_000
# nio's crypto store (SQLite, written on the event loop) in WAL mode without an fsync per commit: a
# write costs microseconds instead of several disk flushes; the log is checkpointed and kept small.
CRYPTO_STORE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                        f"PRAGMA journal_size_limit={1 << 20}")
# No answer came back (refused, reset, timed out); a plain ConnectionError is the bot's own wrapping of an
# answer the homeserver gave (spbot/timeline.py, know_devices), which may be about the token.
UNANSWERED = (ClientConnectionError, asyncio.TimeoutError, TimeoutError, ConnectionRefusedError,
              ConnectionResetError)


async def key_upkeep(client: AsyncClient) -> None:
    """What E2EE needs after each sync: to-device messages out, own keys up, others' keys fetched
    (a failed query raises: the devices of a changed user must be known before their events count)."""
    await client.send_to_device_messages()
    if client.should_upload_keys:
        await client.keys_upload()
    await know_devices(client)
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())


async def know_devices(client: AsyncClient) -> None:
    """Fetch the device lists that changed, before anything is encrypted for those users or judged by
    their devices; a failed query raises ConnectionError (what depends on it waits and tries again)."""
    if client.should_query_keys:
        response = await client.keys_query()
        if not isinstance(response, KeysQueryResponse):
            raise ConnectionError(f"keys query failed: {getattr(response, 'message', response)}")


def nothing_new(response: SyncResponse) -> bool:
    """A long poll that ended with nothing for the bot: no room, to-device, device-list or account
    event. Reading it again (from the position before it) changes nothing."""
    rooms, devices = response.rooms, response.device_list
    return not (rooms.join or rooms.invite or rooms.leave or response.to_device_events
                or devices.changed or devices.left or response.account_data_events)


class LoginFailed(Exception):
    """The homeserver refused the bot's credentials; the message says what to fix."""


class SignedOut(Exception):
    """The homeserver no longer knows the bot's access token: its session was signed out (from a client's
    session list, a password reset that signs out every device, a server admin). Not retried: the bot
    stops with a failure, and its next start logs in as a new device (spbot/trust/own_device.py)."""


UNKNOWN_TOKEN = "M_UNKNOWN_TOKEN"
MAX_RENEWALS = 3              # renewals for one request: a homeserver that expires each new token signs us out


class Connection:
    def __init__(self, config: Config):
        self.config = config
        self.state_dir = Path(config.state_dir)
        self.credentials_path = self.state_dir / "credentials.json"
        self.client: AsyncClient | None = None
        self.first_sync_done = asyncio.Event()
        self.online = asyncio.Event()
        self.offline = asyncio.Event()          # set while syncs fail (online's opposite, to wait on)
        self._stopping = False
        self.on_device_changes: Callable[[list[str]], None] | None = None
        self.on_sync: list[Callable[[SyncResponse], None]] = []     # each response as it comes (quick)
        # Told of each failed and each successful step of the sync loop: async failed(step, exc), succeeded(step).
        self.step_watchers: list[Any] = []
        self._failing: dict[str, type] = {}      # step → the kind of error it last failed with
        self._renewing = asyncio.Lock()

    # --- login ---------------------------------------------------------------------------------

    def _new_client(self, device_id: str | None = None) -> AsyncClient:
        """A client on the device's crypto store, pickled with the bot's own key (never nio's
        default one; a store an older version wrote with it is re-keyed first)."""
        store = crypto_dir(self.state_dir)
        store.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(store, 0o700)
        try:
            pickle_key = ready_pickle_key(self.state_dir, device_id)
        except CryptoKeyError as exc:
            raise LoginFailed(str(exc)) from None
        client_config = AsyncClientConfig(
            store_sync_tokens=True, encryption_enabled=True, max_timeouts=0,
            max_limit_exceeded=3, request_timeout=SYNC_TIMEOUT_MS / 1000 + 15, pickle_key=pickle_key)
        return AsyncClient(self.config.homeserver, self.config.user_id, device_id=device_id,
                           store_path=str(store), config=client_config)

    async def login(self) -> AsyncClient:
        """Restore the stored device, or log in once with the password and store the token (0600).

        A stored device that cannot go on (see _saved_device_unusable) is replaced by a new device logged
        in with the password; `replaced_device` then names the old one (deleted once the new one is
        cross-signed, if it still exists) and `replaced_why` says why."""
        self.replaced_device: str | None = None
        self.replaced_why: str | None = None        # "keys lost", "keys damaged", "keys behind", "signed out"
        self.damaged_crypto_store: Path | None = None
        saved = self._load_credentials() or await self._recovered_credentials()
        if saved:
            register_secret(saved["access_token"])
            why = self._restore(saved) or await self._saved_device_unusable(saved)
            if why is None:
                log.info("login_restored", device_id=saved["device_id"])
                return self.client
            if self.client is not None:
                await self.client.close()
            log.warning("signed_out" if why == "signed out" else "crypto_store_lost", device_id=saved["device_id"],
                        why=why)
            if self.config.password is None:
                raise LoginFailed(cannot_replace(self.state_dir, saved["device_id"], why, self.damaged_crypto_store))
            self.replaced_device, self.replaced_why = saved["device_id"], why
        elif self.config.access_token is not None:
            return await self._adopt_token(self.config.access_token.read())
        password = self.config.password.read()
        self.client = self._new_client()
        response = await self.client.login(password, device_name=self.config.device_name)
        if not isinstance(response, LoginResponse):
            await self.client.close()
            raise LoginFailed(f"the homeserver refused the bot's login for {self.config.user_id}: "
                              f"{getattr(response, 'message', response)}; check the password file")
        register_secret(response.access_token)
        self._save_credentials(response.device_id, response.access_token)
        log.info("login_password", device_id=response.device_id, replaces=self.replaced_device)
        return self.client

    async def _recovered_credentials(self) -> dict | None:
        """credentials.json gone or unreadable: the crypto store's device again (spbot/session_renewal.py)."""
        recovered = await recover_stored_device(self.config, self.state_dir)
        if recovered is None:
            return None
        device_id, token = recovered
        self._save_credentials(device_id, token)
        return {"user_id": self.config.user_id, "device_id": device_id, "access_token": token}

    def mark_keys_behind(self) -> None:
        """The crypto store is older than this device's own messages (spbot/rolled_back.py): the next
        start sets it aside and replaces the device."""
        mark_behind(key_file(self.state_dir, self.client.user_id, self.client.device_id))

    def _restore(self, saved: dict) -> str | None:
        """Load the stored device's crypto store; "keys damaged" when SQLite finds that file damaged (a
        failing disk), "keys behind" when it was found older than the device's own messages: it is set
        aside (crypto/<user>_<device>.db.damaged-<time> or .behind-<time>), and the device is replaced as
        when its keys are lost."""
        self.client = None
        store_file = key_file(self.state_dir, saved["user_id"], saved["device_id"])
        unusable = marked_unusable(store_file)       # found so while it ran (spbot/unusable_keys.py)
        try:
            if unusable is None:
                self.client = self._new_client(saved["device_id"])
                self.client.restore_login(saved["user_id"], saved["device_id"], saved["access_token"])
        except Exception as exc:
            if not is_damage(exc):
                raise
            unusable = ("keys damaged", str(exc)[:200])
        if unusable is None:
            return None
        why, detail = unusable
        self.damaged_crypto_store = set_aside(store_file, why=SET_ASIDE_AS[why])
        log.error("crypto_store_damaged" if why == "keys damaged" else "crypto_store_behind_set_aside",
                  device_id=saved["device_id"], error=detail, set_aside=str(self.damaged_crypto_store))
        return why

    async def _saved_device_unusable(self, saved: dict, renewed: bool = False) -> str | None:
        """Why the stored device cannot go on: "signed out" (the homeserver forgot its token), "keys lost"
        (the homeserver holds other keys for it than the crypto store: restored from an old backup, or
        wiped; nio would make a new Olm account for the old device id, and every upload is refused), or
        None."""
        from .trust.errors import CrossSigningError
        from .trust.own_identity import own_device_replaced
        try:
            lost = await own_device_replaced(self.config.homeserver, saved["access_token"], saved["user_id"],
                                             saved["device_id"], self.client.olm.account.identity_keys)
        except HomeserverError as exc:
            if exc.errcode == UNKNOWN_TOKEN:
                if exc.soft_logout and not renewed:
                    return await self._renewed_then_unusable(saved)
                return "signed out"
            log.warning("device_keys_check_skipped", error=str(exc))
            return None
        except CrossSigningError as exc:      # unreachable now: the cross-signing check tells later
            log.warning("device_keys_check_skipped", error=str(exc))
            return None
        return "keys lost" if lost else None

    async def _renewed_then_unusable(self, saved: dict) -> str | None:
        """The stored token expired while the bot was stopped (a soft logout): renewed as the same device,
        the device is checked again with the new token; "signed out" when it cannot be renewed."""
        try:
            if not await self.renew_session(expired=saved["access_token"]):
                return "signed out"
        except ConnectionError as exc:        # the sync loop meets the expiry again, and renews then
            log.warning("session_renewal_postponed", error=str(exc))
            return None
        return await self._saved_device_unusable({**saved, "access_token": self.client.access_token}, renewed=True)


    async def _adopt_token(self, token: str) -> AsyncClient:
        register_secret(token)
        probe = AsyncClient(self.config.homeserver, self.config.user_id)
        probe.access_token = token
        who = await probe.whoami()
        await probe.close()
        if not isinstance(who, WhoamiResponse) or not who.device_id:
            raise LoginFailed("the homeserver rejected the configured access token (or it has no device); "
                              "create a new one or configure a password file")
        self.client = self._new_client(who.device_id)
        self.client.restore_login(who.user_id, who.device_id, token)
        self._save_credentials(who.device_id, token)
        return self.client

    def _load_credentials(self) -> dict | None:
        try:
            data = json.loads(self.credentials_path.read_text())
        except (OSError, ValueError):
            return None
        return data if data.get("user_id") == self.config.user_id else None

    def _save_credentials(self, device_id: str, token: str) -> None:
        write_private_json(self.credentials_path, {"user_id": self.config.user_id, "device_id": device_id,
                                                   "access_token": token})

    # --- sync ----------------------------------------------------------------------------------

    async def sync_forever(self, handle: Callable[[Batch], Awaitable[None]], since: str | None,
                           save_position: Callable[[str], Awaitable[None]]) -> None:
        """Sync until stopped. Each response is read in full (gaps filled), device-list changes are
        applied, then `handle` gets the batch; only once it returned is the position saved through
        `save_position`. A failed step waits (1 s doubling to 30 s) and is tried again, never
        skipped: after a kill, the batch that was being handled comes again.

        The position is the bot's, not nio's (nio saves its token before handing out the events);
        nio's is read once, so that a bot that kept it there goes on from where it was."""
        self.client.config = dataclasses.replace(self.client.config, store_sync_tokens=False)
        self._tune_crypto_store()
        since = since or self.client.loaded_sync_token or None
        while not self._stopping:
            response = await self._sync(since)
            await self.until_done("device_lists", lambda: self._apply_device_changes(response))
            batch = await self.until_done("gap_fill", lambda: read_batch(self.client, response, since,
                                                                         self.config.max_command_age))
            if batch.gap_events:
                log.info("gap_filled", events=batch.gap_events)
            await self.until_done("handle_batch", lambda: handle(batch))
            if not nothing_new(response):      # an idle long poll writes nothing (a restart reads it again)
                await self.until_done("save_sync_position", lambda: save_position(response.next_batch))
            since = response.next_batch
            self.first_sync_done.set()

    def _tune_crypto_store(self) -> None:
        database = getattr(getattr(self.client, "store", None), "database", None)
        if database is None:
            return
        for pragma in CRYPTO_STORE_PRAGMAS:
            database.execute_sql(pragma)

    async def _sync(self, since: str | None) -> SyncResponse:
        backoff, renewals = 1.0, 0
        while True:
            # nio skips a response whose next_batch equals the one it saw last (a restart with
            # nothing new, a step tried again): it must always process it (rooms, decryption).
            self.client.next_batch = ""
            token = self.client.access_token
            resuming = not self.first_sync_done.is_set() or backoff > 1
            try:
                # no long poll after a failure, and no position ahead of a homeserver put back: timeline.py
                position = await position_to_resume(self.client, since) if resuming else since
                response = await self.client.sync(timeout=0 if resuming else SYNC_TIMEOUT_MS,
                                                  full_state=not self.first_sync_done.is_set(), since=position,
                                                  sync_filter=fresh(SYNC_FILTER) if resuming else SYNC_FILTER)
                if not isinstance(response, SyncResponse):
                    if getattr(response, "status_code", None) == UNKNOWN_TOKEN:
                        if (getattr(response, "soft_logout", False) and renewals < MAX_RENEWALS
                                and await self.renew_session(token)):
                            renewals += 1             # a homeserver that expires every new token: signed out
                            continue
                        raise SignedOut(getattr(response, "message", UNKNOWN_TOKEN))
                    raise ConnectionError(getattr(response, "message", str(response)))
            except (asyncio.CancelledError, SignedOut):
                raise
            except Exception as exc:
                await self._failed("sync", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if not self.online.is_set():
                log.info("homeserver_online")
            self.online.set()
            self.offline.clear()
            for hook in self.on_sync:
                try:
                    hook(response)
                except Exception:        # a helper's bug must not end the sync loop
                    log.exception("sync_hook_failed", hook=getattr(hook, "__qualname__", repr(hook)))
            return response

    async def until_done(self, step: str, work: Callable[[], Awaitable]):
        backoff, renewals = 1.0, 0
        while True:
            try:
                result = await work()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # failed twice, or nio forgot the token (a soft logout): is the token the trouble?
                if (backoff > 1.0 or not self.client.access_token) and await self._token_renewed(
                        step, exc, may_renew=renewals < MAX_RENEWALS):
                    renewals += 1
                    continue
                await self._failed(step, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            self._failing.pop(step, None)
            await self._tell_watchers("succeeded", step)
            return result

    async def _token_renewed(self, step: str, exc: Exception, may_renew: bool = True) -> bool:
        """True when the token had expired and the session is renewed (the step goes again at once); False
        when the token is not the trouble, or the homeserver cannot be reached to renew it. Raises
        SignedOut when the homeserver no longer takes the token and it cannot be renewed. No answer from
        the homeserver at all says nothing of the token: it is not asked then."""
        if self.client.access_token and isinstance(exc, UNANSWERED):
            return False
        token = self.client.access_token
        state = await self._token_state()
        if state is None:
            return False
        if state == "expired" and may_renew:
            try:
                if await self.renew_session(token):
                    return True
            except ConnectionError:
                return False
        raise SignedOut(f"{step}: {exc}") from exc

    async def _token_state(self) -> str | None:
        """"expired" (a soft logout), "signed out", or None when the homeserver still takes the access
        token (asked when a step keeps failing: nio's errors for keys, messages and sends do not all carry
        the error code). nio forgets the token at a soft logout, so a client without one has expired."""
        if not self.client.access_token:
            return "expired"
        try:
            response = await self.client.whoami()
        except Exception:               # unreachable: that is not being signed out
            return None
        if getattr(response, "status_code", None) != UNKNOWN_TOKEN:
            return None
        return "expired" if getattr(response, "soft_logout", False) else "signed out"

    async def renew_session(self, expired: str) -> bool:
        """After a soft logout of the token `expired` (what the failed request carried): log in again with
        the password as the same device (spbot/session_renewal.py) and go on with the new token; True at
        once when another caller renewed it meanwhile. False when it cannot be renewed (no password, or
        the homeserver refused): the caller treats that as signed out. Raises ConnectionError when the
        homeserver cannot be reached (the caller tries again)."""
        async with self._renewing:
            if self.client.access_token and self.client.access_token != expired:
                return True                     # another caller renewed it meanwhile
            if self.config.password is None:
                log.error("session_expired", device_id=self.client.device_id, renewable=False)
                return False
            try:
                token = await login_same_device(self.config, self.client.device_id)
            except RenewalRefused as exc:
                log.error("session_renewal_refused", device_id=self.client.device_id, why=str(exc))
                return False
            except HomeserverError as exc:
                raise ConnectionError(str(exc)) from None
            self.client.access_token = token
            self._save_credentials(self.client.device_id, token)
            log.warning("session_renewed", device_id=self.client.device_id)
            return True

    async def _failed(self, step: str, exc: Exception, backoff: float) -> None:
        if offline(exc):
            if self.online.is_set():
                log.warning("homeserver_unreachable", step=step, error=exc.__class__.__name__,
                            detail=str(exc)[:200], retry_in=backoff)
            self.online.clear()
            self.offline.set()
        elif self._failing.get(step) == type(exc):     # the same trouble again: its traceback is logged
            log.warning("sync_step_still_failing", step=step, error=exc.__class__.__name__,
                        detail=str(exc)[:200], retry_in=backoff)
        else:
            log.exception("sync_step_failed", step=step, retry_in=backoff)
        self._failing[step] = type(exc)
        await self._tell_watchers("failed", step, exc)

    async def _tell_watchers(self, what: str, step: str, *args: Any) -> None:
        await tell_each([getattr(watcher, what) for watcher in self.step_watchers], step, *args,
                        failure="step_watcher_failed")

    async def _apply_device_changes(self, response: SyncResponse) -> None:
        """Before any event of the batch is acted on: forget what was known about users whose
        devices changed, and fetch their device keys (a command from a just-added or just-removed
        device must be judged by the new list)."""
        changed = list(response.device_list.changed) + list(response.device_list.left)
        if self.on_device_changes and changed:
            self.on_device_changes(changed)
        await self._key_upkeep()

    async def _key_upkeep(self) -> None:
        await key_upkeep(self.client)

    async def refresh_devices(self, user_id: str) -> None:
        """Query keys now (a new device of `user_id` may have just appeared in this sync)."""
        self.client.olm.users_for_key_query.add(user_id)
        await self.client.keys_query()

    async def close(self) -> None:
        self._stopping = True
        if self.client is not None:
            await self.client.close()
