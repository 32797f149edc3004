"""`spbot doctor`: check the set-up step by step and say what to fix."""
from __future__ import annotations

import json
from pathlib import Path

import httpx

from .config import Config, ConfigError
from .feature import Check
from .key_files import key_files
from .statedir import stored_access_token
from .store import damage_read_whole

OK, BAD, WARN = "ok  ", "FAIL", "warn"


def _line(mark: str, text: str) -> None:
    print(f"[{mark}] {text}", flush=True)


async def run_checks(config: Config) -> int:
    """Homeserver and bot account first, then each feature's own set-up checks under its heading; a
    feature that is not set up says nothing."""
    _heading("matrix")
    failures = await _check_matrix(config)
    _check_state_files(config)
    from .features import all_features
    for kind in all_features():
        checks = await _feature_checks(kind, config)
        if checks:
            _heading(kind.title or kind.name)
        for check in checks:
            todo = check.todo if check.state != "ok" else ""
            _line({"ok": OK, "warn": WARN}.get(check.state, BAD),
                  f"{check.text.rstrip('.')}: {todo}" if todo else check.text)
            failures += check.state == "fail"
    return 1 if failures else 0


def _check_state_files(config: Config) -> None:
    """The bot's state database and its device's key files, read whole (read-only: the bot may be running).
    A damaged one is a warning: the bot sets it aside at its next start and says so."""
    state_dir = Path(config.state_dir)
    files = [("state database", state_dir / "spbot.db")]
    files += [("key file", path) for path in key_files(state_dir, config.user_id)]
    if not files[0][1].exists() and len(files) > 1:
        _line(WARN, f"the state database {files[0][1]} is missing beside the device's key files: at its next "
                    "start the bot starts with an empty one and tells the admins what it forgot")
    for what, path in files:
        if not path.exists():
            continue
        problem = damage_read_whole(path, rows=3)
        if problem is None:
            _line(OK, f"the {what} {path.name} reads whole")
        else:
            _line(WARN, f"the {what} {path} is damaged ({problem}): at its next start the bot sets it aside "
                        "and tells the admins; check the disk (dmesg, smartctl)")


def _heading(name: str) -> None:
    print(f"-- {name}", flush=True)


async def _feature_checks(kind, config: Config) -> list[Check]:
    try:
        return await kind.doctor(config)
    except ConfigError as exc:
        return [Check("fail", exc.problems[0], "fix it in the config")]
    except Exception as exc:  # one feature's broken check must not hide the others' results
        return [Check("fail", f"the check itself failed ({exc.__class__.__name__})",
                      "report this as a bug in spbot")]


async def _check_matrix(config: Config) -> int:
    _line(OK, f"configuration is valid ({len(config.admins)} admins, {len(config.rooms)} rooms)")
    failures = 0
    async with httpx.AsyncClient(base_url=config.homeserver, timeout=10) as http:
        try:
            versions = (await http.get("/_matrix/client/versions")).json()["versions"]
            _line(OK, f"homeserver {config.homeserver} answers (spec {versions[-1]})")
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            _line(BAD, f"homeserver {config.homeserver} does not answer ({exc.__class__.__name__}): "
                       "check the URL and that the homeserver runs")
            return 1
        token = _stored_token(config)
        if token is None:
            failures += await _check_password(http, config)
            _line(WARN, "the bot has not logged in yet: start it once (spbot run) to create its device")
            return failures
        http.headers["Authorization"] = f"Bearer {token}"
        failures += await _check_session(http, config)
    failures += await _check_cross_signing(config, token)
    return failures


async def _check_cross_signing(config: Config, token: str) -> int:
    from .trust.errors import CrossSigningError
    from .trust.own_identity import CrossSigning
    creds = json.loads((config.state_dir / "credentials.json").read_text())
    try:
        async with CrossSigning(config.homeserver, config.user_id, token, creds["device_id"]) as signing:
            status = await signing.inspect(config.state_dir)
    except CrossSigningError as exc:
        _line(WARN, f"cross-signing could not be checked: {exc}")
        return 0
    if status.state == "ok":
        _line(OK, f"cross-signed: identity {status.fingerprint}, this device signed")
        return 0
    fixes = {"not_set_up": "start the bot: it sets up cross-signing by itself",
             "device_unsigned": "restart the bot: it signs its device at start",
             "mismatch": "the homeserver holds another identity for the bot; if nobody reset it on "
                         "purpose change the bot's password, then run: spbot trust reset --config FILE"}
    _line(BAD if status.state == "mismatch" else WARN, f"cross-signing: {status.detail} "
          f"({fixes.get(status.state, status.state)})")
    return 1 if status.state == "mismatch" else 0


def _stored_token(config: Config) -> str | None:
    return stored_access_token(config.state_dir)


async def _check_password(http: httpx.AsyncClient, config: Config) -> int:
    if config.password is None:
        return 0
    try:
        password = config.password.read()
    except ConfigError as exc:
        _line(BAD, exc.problems[0])
        return 1
    response = await http.post("/_matrix/client/v3/login", json={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": config.user_id},
        "password": password, "initial_device_display_name": "spbot doctor"})
    if response.status_code != 200:
        _line(BAD, f"login as {config.user_id} refused ({response.json().get('errcode')}): "
                   "check the password file")
        return 1
    await http.post("/_matrix/client/v3/logout",
                    headers={"Authorization": f"Bearer {response.json()['access_token']}"})
    _line(OK, f"the password of {config.user_id} works")
    return 0


def _soft_logout(response: httpx.Response) -> bool:
    try:
        return response.json().get("soft_logout") is True
    except (ValueError, AttributeError):
        return False


async def _check_session(http: httpx.AsyncClient, config: Config) -> int:
    who = await http.get("/_matrix/client/v3/account/whoami")
    if who.status_code != 200 and _soft_logout(who) and config.password is not None:
        _line(WARN, "the stored access token has expired (the homeserver's session lifetime); the device is "
                    "kept: the bot logs in again as the same device with its password, running or at its "
                    "next start")
        return 0
    if who.status_code != 200:
        _line(BAD, "the stored access token was rejected (the bot's session was signed out): with a password "
                   "file the bot logs in again as a new device when it next starts; with only an access "
                   "token, put a new one in its file and delete state_dir/credentials.json")
        return 1
    _line(OK, f"logged in as {who.json()['user_id']}, device {who.json().get('device_id')}")
    joined = set((await http.get("/_matrix/client/v3/joined_rooms")).json().get("joined_rooms", []))
    failures = 0
    for room in config.rooms:
        if room not in joined:
            _line(BAD, f"the bot is not in {room}: invite it from an admin account")
            failures += 1
            continue
        tombstone = await http.get(f"/_matrix/client/v3/rooms/{room}/state/m.room.tombstone/")
        if tombstone.status_code == 200:
            _line(WARN, f"room {room} was upgraded to {tombstone.json().get('replacement_room')}: the bot "
                        "follows it there; put the new id in rooms")
        state = await http.get(f"/_matrix/client/v3/rooms/{room}/state/m.room.encryption/")
        if state.status_code == 200:
            _line(OK, f"room {room}: joined, encrypted ({state.json().get('algorithm')})")
        else:
            _line(BAD, f"room {room} is not encrypted: enable encryption in its settings")
            failures += 1
    return failures
