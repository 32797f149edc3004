"""The crypto store's own pickle key. nio encrypts the pickled Olm account and sessions in its store
with a passphrase that defaults to the well-known "DEFAULT_KEY": no protection at all for the keys
that read every message. The bot makes a random key once and keeps it beside its credentials
(`<state_dir>/crypto.key`, 0600); a store an older version pickled with the default key is re-pickled
under the bot's key at start, so the device, its identity and every session it holds stay the same."""
from __future__ import annotations

import secrets
import sqlite3
from datetime import datetime
from pathlib import Path

from nio.crypto.sessions import InboundGroupSession, OlmAccount, Session

from ..logs import get_logger, register_secret
from ..key_files import key_files
from ..system.private_files import write_private

log = get_logger(__name__)

KEY_FILE = "crypto.key"
NIO_DEFAULT_KEY = "DEFAULT_KEY"      # AsyncClientConfig.pickle_key when none is given


class CryptoKeyError(Exception):
    """The crypto store opens with neither the bot's key nor nio's default one."""


def ready_pickle_key(state_dir: Path, device_id: str | None = None) -> str:
    """The bot's pickle key (made on first use), with every store under `<state_dir>/crypto` already
    re-pickled to it. Pass it as `AsyncClientConfig(pickle_key=...)`. A store that opens with
    neither key stops the start only if it is `device_id`'s; a leftover of another device is skipped."""
    key = load_or_create(Path(state_dir) / KEY_FILE)
    for database in key_files(state_dir):
        try:
            if rekey_store(database, NIO_DEFAULT_KEY, key):
                log.info("crypto_store_rekeyed", store=database.name)
        except CryptoKeyError as exc:
            if device_id is not None and database.name.endswith(f"_{device_id}.db"):
                raise
            log.warning("crypto_store_skipped", store=database.name, reason=str(exc))
    return key


def load_or_create(path: Path) -> str:
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if not key:
        key = secrets.token_urlsafe(32)
        write_private(path, key + "\n")   # whole or absent: a half-written key would lock the store for good
    register_secret(key)
    return key


def rekey_store(database: Path, old: str, new: str) -> bool:
    """Re-pickle the account, Olm sessions and inbound Megolm sessions of one nio store from `old` to
    `new`, in one transaction; False if it is already under `new` (or holds no account).
    Outbound Megolm sessions are not stored by nio: they are made afresh after a start."""
    db = sqlite3.connect(database)
    try:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'accounts'").fetchone():
            return False
        accounts = db.execute("SELECT id, account, shared FROM accounts").fetchall()
        if not accounts or all(_opens_account(row, new) for row in accounts):
            return False
        for row in accounts:
            if not _opens_account(row, new) and not _opens_account(row, old):
                raise CryptoKeyError(
                    f"the crypto store {database} does not open with {database.parent.parent / KEY_FILE} "
                    "(was the key file replaced or lost?): put the right key file back, or move the "
                    "crypto directory and credentials.json aside to start with a new device")
        db.execute("PRAGMA secure_delete=ON")          # the old pickles must not linger in free pages
        with db:
            for account_id, pickle, shared in accounts:
                if not _opens_account((account_id, pickle, shared), new):
                    account = OlmAccount.from_pickle(_bytes(pickle), old, bool(shared))
                    db.execute("UPDATE accounts SET account = ? WHERE id = ?",
                               (account.pickle(new), account_id))
            for session_id, pickle in db.execute("SELECT session_id, session FROM olmsessions").fetchall():
                session = Session.from_pickle(_bytes(pickle), datetime.now(), old)
                db.execute("UPDATE olmsessions SET session = ? WHERE session_id = ?",
                           (session.pickle(new), session_id))
            for session_id, pickle, fp_key, sender_key, room_id in db.execute(
                    "SELECT session_id, session, fp_key, sender_key, room_id "
                    "FROM megolminboundsessions").fetchall():
                session = InboundGroupSession.from_pickle(_bytes(pickle), fp_key, sender_key, room_id, old)
                db.execute("UPDATE megolminboundsessions SET session = ? WHERE session_id = ?",
                           (session.pickle(new), session_id))
        db.execute("VACUUM")
        return True
    finally:
        db.close()


def _opens_account(row: tuple, key: str) -> bool:
    try:
        OlmAccount.from_pickle(_bytes(row[1]), key, bool(row[2]))
        return True
    except Exception:                 # vodozemac and the libolm fallback raise their own kinds
        return False


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)
