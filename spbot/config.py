"""The bot's configuration: one TOML file plus SPBOT_* environment variables, validated by pydantic.

Precedence: environment > file > default. `SPBOT_LOG_LEVEL=DEBUG` sets a top-level key,
`SPBOT_BACKUP__SCHEDULE="0 3 * * *"` a key of a section (`__` between the levels); values are read as
TOML values where they parse as one (numbers, booleans, lists), as text otherwise.

A bad file stops the bot at start with one clear line per problem, in the admin's words (an unknown
key or section gets a did-you-mean); see `load_config` and `Config.check_sections`.
"""
from __future__ import annotations

import os
import re
import tomllib
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field,
                      ValidationError, model_validator)

from .logs import register_secret
from .system.private_files import read_secret_line
from spbot.model import Model

USER_ID = re.compile(r"^@[a-z0-9._=/+\-]+:[A-Za-z0-9.\-]+(:\d+)?$")
ROOM_ID = re.compile(r"^![A-Za-z0-9._=/+\-]+(:[A-Za-z0-9.\-]+(:\d+)?)?$")  # v12 ids have no server
HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class ConfigError(Exception):
    """The configuration cannot be used; `problems` has one readable line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_duration(value: Any) -> float:
    """'90s', '10m', '2h', '7d' or a number of seconds → seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError("expected a duration such as 90s, 10m, 2h or 7d")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("expected the homeserver's URL such as https://matrix.example.org")
    return value.rstrip("/")


def _user_id(value: str) -> str:
    if not USER_ID.match(value):
        raise ValueError("expected a Matrix user id such as @alice:example.org")
    return value


def _room_id(value: str) -> str:
    if not ROOM_ID.match(value):
        raise ValueError("expected a Matrix room id such as !abcdef:example.org")
    return value


def _host_name(value: str) -> str:
    if not HOST_NAME.match(value):
        raise ValueError("expected a short host name such as nas or vps-mail (lowercase letters, digits, "
                         "dashes; at most 24)")
    return value


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        from difflib import get_close_matches   # only when a name is wrong
        close = get_close_matches(value, sorted(zoneinfo.available_timezones()), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ValueError(f"unknown time zone; {hint}use a name such as Europe/Berlin or UTC") from None
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
UserId = Annotated[str, AfterValidator(_user_id)]
RoomId = Annotated[str, AfterValidator(_room_id)]
HostName = Annotated[str, AfterValidator(_host_name)]


class Secret(Model):
    """Where a secret comes from: a file (first line) or an environment variable; never inline."""
    model_config = ConfigDict(extra="forbid")
    file: Path | None = None
    env: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "Secret":
        if (self.file is None) == (self.env is None):
            raise ValueError("give exactly one of file = \"/path\" or env = \"VARIABLE\"")
        return self

    def read(self) -> str:
        """The secret, registered for log redaction (spbot/logs.py): every secret the bot reads comes
        through here or through spbot/system/private_files.py's reader, so none shows in a log line."""
        if self.file is not None:
            try:
                return read_secret_line(self.file)
            except (OSError, IndexError) as exc:
                raise ConfigError([f"secret file {self.file}: cannot be read ({exc.__class__.__name__})"])
        value = os.environ.get(self.env or "")
        if not value:
            raise ConfigError([f"secret: environment variable {self.env} is not set"])
        register_secret(value)
        return value

    def __repr__(self) -> str:
        return f"Secret(file={self.file!s}, env={self.env})"


class FleetSettings(Model):
    """[fleet]: the other bots of a room shared by several servers (each runs its own spbot)."""
    model_config = ConfigDict(extra="forbid")
    peers: dict[HostName, UserId] = Field(
        default_factory=dict, examples=[{"vps": "@spbot:vps.example.org"}],
        description="The other bots in the admin room, by host name; empty: this bot is alone.")
    default: HostName | None = Field(
        None, description="The host whose bot answers unaddressed commands (default: the first name "
                          "in alphabetical order).")
    answer_timeout: Duration = Field(
        10.0, description="How long the bot that gathers the answers to !all waits for the others.")
    heartbeat_interval: Duration = Field(
        60.0, description="How often each bot tells the others it is alive (a hidden, encrypted event).")
    silent_after: Duration = Field(
        600.0, description="A bot not heard from for this long is reported silent (once per outage).")


class PolicyOverride(Model):
    """[policies."backup restore"] approvals = 2 — overrides a command's declared policy."""
    model_config = ConfigDict(extra="forbid")
    approvals: int = Field(ge=0, le=10, examples=[2],
                           description="How many other admins must approve (0: none, for a one-admin household).")
    confirm: bool = Field(False, description="With approvals = 0: the requester confirms once more before it "
                                             "runs.")
    expires: Duration | None = Field(None, description="How long the request waits for votes (unset: the "
                                                       "command's own, else approval_expiry).")


# Command modules declare their own [section] with `config_section`; validated with the rest at start.
SECTIONS: dict[str, type[BaseModel]] = {}


def config_section(name: str):
    """Class decorator: `@config_section("backup") class BackupSettings(BaseModel): ...`."""
    def register(model: type[BaseModel]) -> type[BaseModel]:
        SECTIONS[name] = model
        return model
    return register


config_section("fleet")(FleetSettings)


class Config(Model):
    """Everything the runtime needs; command groups read their own sections from `extra`. The file is
    read by `load_config`, which also merges SPBOT_ environment variables (pydantic-settings is not
    needed for that, and costs ~20 MB of memory)."""
    model_config = ConfigDict(extra="allow", validate_default=True)

    homeserver: Annotated[str, AfterValidator(_http_url)] = Field(
        examples=["https://matrix.example.org"],
        description="The URL of the bot's homeserver (its client API).")
    user_id: UserId = Field(examples=["@spbot:example.org"], description="The bot's own Matrix account.")
    password: Secret | None = Field(
        None, examples=[{"file": "/etc/spbot/password"}],
        description="The bot account's password, used once to log in and create the bot's device.")
    access_token: Secret | None = Field(
        None,
        description="Instead of a password: an access token of an existing device of the bot's account.")
    host: HostName | None = Field(
        None, examples=["nas"],
        description="This server's short name: in a room with several bots, `!on nas disk` addresses it.")
    device_name: str = Field("spbot", description="The name of the bot's device, as clients show it.")
    admins: list[UserId] = Field(
        min_length=1, examples=[["@alice:example.org", "@bob:example.org"]],
        description="The Matrix ids whose commands the bot obeys; dangerous commands need another of them to "
                    "approve.")
    rooms: list[RoomId] = Field(
        default_factory=list, examples=[["!AbCdEfGhIjKlMnOpQr:example.org"]],
        description="The encrypted admin room(s) the bot listens in; it joins only these, on an admin's "
                    "invitation.")
    allow_any_admin_room: bool = Field(
        False,
        description="Listen in any room an admin invites the bot to (instead of listing rooms).")
    device_policy: Literal["tofu", "cross-signed"] = Field(
        "tofu",
        description="tofu: any device of an admin is obeyed, a new one is announced in the room; cross-signed: "
                    "only devices the admin verified with their pinned cross-signing identity.")
    state_dir: Path = Field(
        examples=["/var/lib/spbot"],
        description="The bot's device, keys, access token and SQLite state; keep it (losing it means a new "
                    "device).")
    timezone: Annotated[str, AfterValidator(_timezone)] = Field(
        "UTC",
        description="The time zone for schedules and the times the bot shows.")
    max_command_age: Duration = Field(
        600.0,
        description="Commands older than this (sent while the bot was offline) are not run; the sender is told.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO",
        description="How much the bot logs.")
    command_prefix: str = Field("!", description="What starts a command.")
    plugins: list[str] = Field(
        default_factory=list,
        description="Extra Python modules with command declarations (tests load their own this way).")
    undecryptable_wait: Duration = Field(
        10.0,
        description="How long to wait for the keys of a message the bot cannot decrypt before saying so.")
    approval_expiry: Duration = Field(
        1800.0,
        description="How long an approval request waits for votes before it expires and nothing runs.")
    policies: dict[str, PolicyOverride] = Field(
        default_factory=dict,
        description="Per-command approval overrides.")
    progress_interval: Duration = Field(
        2.0,
        description="The least time between two progress edits of a long job's message.")
    stranger_reply_interval: Duration = Field(
        3600.0,
        description="How often a non-admin who sends a command is told that the bot does not obey them.")
    priority: dict[Literal["backup", "upgrade", "cleanup"], Literal["low", "idle", "normal"]] = Field(
        default_factory=dict, examples=[{"backup": "idle"}],
        description="How much of the machine each feature's long programs (restic, apt, nixos-rebuild, "
                    "cleanup steps) may take: low (nice 10, lowest best-effort I/O, half the cores for "
                    "restic; the default), idle (nice 19, idle I/O: only what no one else wants, one "
                    "core) or normal (as the bot).")

    @model_validator(mode="after")
    def _credentials(self) -> "Config":
        if self.password is None and self.access_token is None:
            raise ValueError("give password = {file = ...} or access_token = {file = ...} "
                             "so the bot can log in")
        if not self.rooms and not self.allow_any_admin_room:
            raise ValueError("list the admin room(s) in rooms = [\"!id:server\"], "
                             "or set allow_any_admin_room = true")
        return self

    @property
    def fleet(self) -> FleetSettings:
        return self.settings("fleet")

    def section(self, name: str) -> dict[str, Any]:
        """A command group's own table, e.g. [backup]; {} when absent."""
        value = (self.model_extra or {}).get(name, {})
        return value if isinstance(value, dict) else {}

    def settings(self, name: str) -> Any:
        """The validated model of a registered section (its defaults when the table is absent)."""
        cache = self.__dict__.setdefault("_sections", {})
        if name not in cache:
            cache[name] = SECTIONS[name].model_validate(self.section(name))
        return cache[name]

    def check_sections(self) -> None:
        """Validate every registered section, and refuse unknown ones (a typo must not be silently
        ignored); ConfigError with one line per problem."""
        extra = self.model_extra or {}
        problems = [_unknown_line((name,), self._known_top_level(), is_table=isinstance(extra[name], dict))
                    for name in sorted(extra) if name not in SECTIONS]
        for name in sorted(SECTIONS):
            try:
                self.settings(name)
            except ValidationError as exc:
                for error in exc.errors():
                    problems.append(_describe(error, SECTIONS[name], prefix=(name,)))
        if problems:
            raise ConfigError(problems)

    @classmethod
    def _known_top_level(cls) -> list[str]:
        return sorted(set(cls.model_fields) | set(SECTIONS))


# What pydantic says, in the admin's words: error type → the sentence (with an example of a valid value).
_PLAIN = {
    "model_type": "expected a table, e.g. { file = \"/etc/spbot/secret\" } or [section] with keys",
    "model_attributes_type": "expected a table, e.g. { file = \"/etc/spbot/secret\" } or [section] with keys",
    "dict_type": "expected a table of keys and values",
    "list_type": "expected a list, e.g. [\"a\", \"b\"]",
    "string_type": "expected text in quotes",
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "literal_error": None,          # pydantic's own "Input should be 'a' or 'b'" is reworded below
}


def _unknown_line(loc: tuple, known: list[str], is_table: bool = False) -> str:
    from difflib import get_close_matches   # only when a name is wrong
    name = str(loc[-1])
    close = get_close_matches(name, known, n=1, cutoff=0.6)
    what = "section" if is_table else "key"
    shown = f"[{name}]" if is_table and len(loc) == 1 else ".".join(map(str, loc))
    if close:
        hint = f"did you mean {'[' + close[0] + ']' if close[0] in SECTIONS and len(loc) == 1 else close[0]}?"
    else:
        hint = f"known here: {', '.join(known[:15])}" if known else "remove it"
    return f"{shown}: unknown {what}; {hint}"


def _fields_at(model: type[BaseModel] | None, path: tuple) -> list[str]:
    """The field names of the (nested) model that `path` leads into, for a did-you-mean."""
    for part in path:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        model = model_in(field.annotation)
    return sorted(model.model_fields) if model is not None else []


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field's type holds (`Secret | None`, `dict[str, ServiceSettings]`, …), the
    first one of a union; None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = model_in(arg)
        if found is not None:
            return found
    return None


def _describe(error: dict, model: type[BaseModel] | None = None, prefix: tuple = ()) -> str:
    loc = (*prefix, *error["loc"])
    where = ".".join(str(p) for p in loc) or "(file)"
    if error["type"] == "extra_forbidden":
        return _unknown_line(loc, _fields_at(model, tuple(error["loc"][:-1])))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "literal_error":
        message = "expected one of " + message.removeprefix("Input should be ").replace("'", '"')
    elif _PLAIN.get(error["type"]):
        message = _PLAIN[error["type"]]
    if error["type"] == "missing":
        return f"{where}: missing; this setting is required"
    shown = error.get("input")
    if isinstance(shown, (dict, list)) or where in ("password", "access_token"):
        return f"{where}: {message}"
    return f"{where}: {shown!r} is not valid: {message}"


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate the TOML file; raise ConfigError with one line per problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: no such configuration file"])
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except Exception as exc:  # tomllib.TOMLDecodeError, UnicodeDecodeError and OSError
        raise ConfigError([f"{path}: not valid TOML: {exc}"])
    _merge_environment(data, os.environ)
    try:
        config = Config(**data)
    except ValidationError as exc:
        unknown = [_unknown_line((name,), Config._known_top_level(), is_table=isinstance(data[name], dict))
                   for name in sorted(data) if SECTIONS and name not in Config.model_fields
                   and name not in SECTIONS]
        raise ConfigError([_describe(e, Config) for e in exc.errors()] + unknown)
    config.state_dir = (path.parent / config.state_dir).resolve() \
        if not config.state_dir.is_absolute() else config.state_dir
    return config


_SECRET_FIELDS = {"password", "access_token"}


def _merge_environment(data: dict, environ: Any) -> None:
    """SPBOT_KEY and SPBOT_SECTION__KEY over the file's values. A plain SPBOT_ variable that names no
    setting is left alone (other tools use the prefix too); a nested one names a section and is
    checked like the file's sections."""
    for name, raw in sorted(environ.items()):
        if not name.startswith("SPBOT_") or len(name) <= 6:
            continue
        path = [part.lower() for part in name[6:].split("__")]
        if len(path) == 1 and (path[0] not in Config.model_fields or path[0] in _SECRET_FIELDS):
            continue                  # e.g. SPBOT_PASSWORD is the secret itself, read by { env = … }
        target = data
        for part in path[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[path[-1]] = _env_value(raw)


def _env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
