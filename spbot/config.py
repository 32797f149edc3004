"""The bot's configuration: one TOML file (plus SPBOT_* environment variables), validated by pydantic.

A bad file stops the bot at start with one clear line per problem; see `load_config`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field,
                      ValidationError, model_validator)
from pydantic_settings import (BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict,
                               TomlConfigSettingsSource)

USER_ID = re.compile(r"^@[a-z0-9._=/+\-]+:[A-Za-z0-9.\-]+(:\d+)?$")
ROOM_ID = re.compile(r"^![A-Za-z0-9._=/+\-]+(:[A-Za-z0-9.\-]+(:\d+)?)?$")  # v12 ids have no server
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


Duration = Annotated[float, BeforeValidator(parse_duration)]
UserId = Annotated[str, AfterValidator(_user_id)]
RoomId = Annotated[str, AfterValidator(_room_id)]


class Secret(BaseModel):
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
        if self.file is not None:
            try:
                return self.file.read_text().splitlines()[0].strip()
            except (OSError, IndexError) as exc:
                raise ConfigError([f"secret file {self.file}: cannot be read ({exc.__class__.__name__})"])
        value = os.environ.get(self.env or "")
        if not value:
            raise ConfigError([f"secret: environment variable {self.env} is not set"])
        return value

    def __repr__(self) -> str:
        return f"Secret(file={self.file!s}, env={self.env})"


class PolicyOverride(BaseModel):
    """[policies."backup restore"] approvals = 2 — overrides a command's declared policy."""
    model_config = ConfigDict(extra="forbid")
    approvals: int = Field(ge=0, le=10)
    confirm: bool = False
    expires: Duration | None = None


# Command modules declare their own [section] with `config_section`; validated with the rest at start.
SECTIONS: dict[str, type[BaseModel]] = {}


def config_section(name: str):
    """Class decorator: `@config_section("backup") class BackupSettings(BaseModel): ...`."""
    def register(model: type[BaseModel]) -> type[BaseModel]:
        SECTIONS[name] = model
        return model
    return register


class Config(BaseSettings):
    """Everything the runtime needs; command groups read their own sections from `extra`."""
    model_config = SettingsConfigDict(env_prefix="SPBOT_", env_nested_delimiter="__", extra="allow")

    homeserver: Annotated[str, AfterValidator(_http_url)]
    user_id: UserId
    password: Secret | None = None
    access_token: Secret | None = None
    device_name: str = "spbot"
    admins: list[UserId] = Field(min_length=1)
    rooms: list[RoomId] = Field(default_factory=list)
    allow_any_admin_room: bool = False
    # tofu: any device of an admin is accepted (a new one is announced once);
    # cross-signed: only devices the admin verified (signed by their pinned cross-signing identity).
    device_policy: Literal["tofu", "cross-signed"] = "tofu"
    state_dir: Path
    timezone: str = "UTC"
    max_command_age: Duration = 600.0
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    command_prefix: str = "!"
    # Extra Python modules with @command declarations (tests load their own this way).
    plugins: list[str] = Field(default_factory=list)
    undecryptable_wait: Duration = 10.0
    approval_expiry: Duration = 1800.0
    policies: dict[str, PolicyOverride] = Field(default_factory=dict)
    progress_interval: Duration = 2.0
    stranger_reply_interval: Duration = 3600.0

    @model_validator(mode="after")
    def _credentials(self) -> "Config":
        if self.password is None and self.access_token is None:
            raise ValueError("give password = {file = ...} or access_token = {file = ...} "
                             "so the bot can log in")
        if not self.rooms and not self.allow_any_admin_room:
            raise ValueError("list the admin room(s) in rooms = [\"!id:server\"], "
                             "or set allow_any_admin_room = true")
        return self

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
        """Validate every registered section; ConfigError with one line per problem."""
        problems = []
        for name in sorted(SECTIONS):
            try:
                self.settings(name)
            except ValidationError as exc:
                for error in exc.errors():
                    error = {**error, "loc": (name, *error["loc"])}
                    problems.append(_describe(error))
        if problems:
            raise ConfigError(problems)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings,
                                   env_settings, dotenv_settings, file_secret_settings
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(file)"
    message = error["msg"].removeprefix("Value error, ")
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
        data = TomlConfigSettingsSource(Config, toml_file=path)()
    except Exception as exc:  # tomllib.TOMLDecodeError and OSError
        raise ConfigError([f"{path}: not valid TOML: {exc}"])
    try:
        config = Config(**data)
    except ValidationError as exc:
        raise ConfigError([_describe(e) for e in exc.errors()])
    config.state_dir = (path.parent / config.state_dir).resolve() \
        if not config.state_dir.is_absolute() else config.state_dir
    return config
