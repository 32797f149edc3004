"""`spbot trust accept @alice` and `spbot trust reset`: trust decisions taken at the server's console,
for when no other admin can approve in the room (or the bot's own identity must start over). An
acceptance made here is told in the room by the running bot (within seconds, or when it next starts),
which also resolves the identity-change alert there."""
from __future__ import annotations

import json
import sys

from nio import AsyncClient, AsyncClientConfig

from ..config import Config, ConfigError
from ..key_files import crypto_dir
from ..store import Store
from .errors import CrossSigningError
from .homeserver import matrix_http
from .identities import query_identity
from .own_identity import CrossSigning
from .pickle_key import ready_pickle_key
from .pins import IdentityPins, leave_console_note
from .signing import format_fingerprint


def _credentials(config: Config) -> dict:
    try:
        return json.loads((config.state_dir / "credentials.json").read_text())
    except (OSError, ValueError):
        raise ConfigError([f"{config.state_dir}/credentials.json: missing; start the bot once first"])


async def accept(config: Config, user_id: str) -> int:
    if user_id not in config.admins:
        print(f"{user_id} is not an admin in the config")
        return 2
    creds = _credentials(config)
    store = await Store(config.state_dir / "spbot.db").open()
    try:
        async with matrix_http(config.homeserver, creds["access_token"]) as http:
            identity = await query_identity(http, user_id)
        if not identity.has_identity:
            print(f"{user_id} has no cross-signing identity: there is nothing to accept")
            return 2
        pins = IdentityPins(store)
        pinned = await pins.pinned_key(user_id)
        if pinned == identity.master_key:
            print(f"nothing to accept: the identity of {user_id} ({identity.fingerprint}) is already trusted")
            return 0
        print(f"{user_id}: pinned identity {format_fingerprint(pinned)}\n  new identity   {identity.fingerprint}")
        if sys.stdin.isatty() and input("compare it with them in person; accept it? [y/N] ").strip().lower() \
                not in ("y", "yes"):
            print("nothing was accepted")
            return 1
        result = await pins.accept(user_id, identity, expected=identity.master_key,
                                   by="at the server's console: spbot trust accept", announced=False)
    except CrossSigningError as exc:
        print(f"could not look up {user_id}: {exc}")
        return 1
    finally:
        await store.close()
    leave_console_note(config.state_dir)
    print(f"accepted the identity of {user_id}: {format_fingerprint(result.master_key)}; the bot tells "
          "the room")
    return 0


async def reset(config: Config) -> int:
    creds = _credentials(config)
    if config.password is None:
        print("a reset needs the bot account's password: set password = { file = ... } in the config")
        return 2
    pickle_key = ready_pickle_key(config.state_dir, creds["device_id"])   # the store has a key of its own
    client = AsyncClient(config.homeserver, config.user_id, device_id=creds["device_id"],
                         store_path=str(crypto_dir(config.state_dir)),
                         config=AsyncClientConfig(pickle_key=pickle_key))
    client.restore_login(config.user_id, creds["device_id"], creds["access_token"])
    try:
        async with CrossSigning.from_nio(client, password=config.password.read()) as signing:
            status = await signing.reset(config.password.read(), config.state_dir,
                                         client.olm.account.identity_keys)
    except CrossSigningError as exc:
        print(f"reset failed: {exc}")
        return 1
    finally:
        await client.close()
    print(f"new bot identity {status.fingerprint}; clients will show that the bot's identity changed")
    return 0
