"""Hetzner Cloud and DNS as the chat commands see them: the [hetzner] and [dns] config sections,
the clients built from them, the reboot that has to be reported after the bot comes back, the
mount → Hetzner volume lookup with the filesystem growth step, and the scheduled DNS drift check.

The API work itself lives in providers/hetzner.py and providers/dns/; this module adds what the
bot needs around it (config, secrets, local filesystems, persistence, alerts).
"""
from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import psutil
from pydantic import BaseModel, ConfigDict, Field, model_validator

from spbot.providers.dns import DnsError, HttpPolicy, make_provider
from spbot.providers.dns.diff import RecordCheck, Status, check_zone
from spbot.providers.dns.records import DEFAULT_SUBDOMAINS, DnsRecord, DomainConfig, expected_records
from spbot.providers.hetzner import (
    ActionResult, HetznerCloud, HetznerError, HetznerSettings, Price, RetryPolicy, ServerFacts,
    VolumeInfo, volume_id_for_device,
)

from .config import ConfigError, Duration, Secret, config_section
from .context import Request, UserError
from .logs import get_logger, register_secret
from .render import Reply, human_duration
from .system import proc

if TYPE_CHECKING:
    from .bot import Bot

log = get_logger(__name__)

MAX_VOLUME_GB = 10240  # Hetzner's largest volume
GROWABLE = {"ext2": "resize2fs", "ext3": "resize2fs", "ext4": "resize2fs", "xfs": "xfs_growfs"}
REBOOT_KEY = "hetzner:reboot"
REPORT_ATTEMPTS = 6
REPORT_RETRY_WAIT = 10.0  # seconds between tries to read the outcome after a restart
RESIZE_SHOWN_KEY = "hetzner:resize-shown:"
DRIFT_ALERT = "dns:drift"
UNREACHABLE_ALERT = "dns:unreachable"


# -- configuration -------------------------------------------------------------------------


@config_section("hetzner")
class HetznerConfig(BaseModel):
    """[hetzner]: the server this bot manages, and how volumes are found and grown locally."""

    model_config = ConfigDict(extra="forbid")

    token: Secret | None = None
    server: str | int | None = None  # the server's name (or id) in the Hetzner project
    api_endpoint: str = "https://api.hetzner.cloud/v1"
    timeout: Duration = 30.0
    poll_interval: Duration = 1.0
    action_timeout: Duration = 900.0
    shutdown_timeout: Duration = 120.0
    max_retries: int = Field(5, ge=0, le=20)
    backoff_base: Duration = 1.0
    backoff_cap: Duration = 30.0
    rate_limit_max_wait: Duration = 60.0
    # None: the bot runs on the server if one of its addresses is on a local interface.
    bot_runs_on_server: bool | None = None
    by_id_dir: Path = Path("/dev/disk/by-id")
    findmnt: str = "findmnt"
    resize2fs: str = "resize2fs"
    xfs_growfs: str = "xfs_growfs"
    grow_timeout: Duration = 600.0
    volume_grow_step_gb: int = Field(10, ge=1, le=MAX_VOLUME_GB)
    # EUR per GB and month without VAT, used only when Hetzner's price list cannot be read.
    volume_price_per_gb_month: Decimal | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> HetznerConfig:
        if (self.token is None) != (self.server is None):
            raise ValueError('give both token = {file = "..."} and server = "<server name>"')
        return self

    @property
    def configured(self) -> bool:
        return self.token is not None

    def provider_settings(self, token: str) -> HetznerSettings:
        return HetznerSettings(
            token=token, server=self.server, api_endpoint=self.api_endpoint,
            timeout=self.timeout, poll_interval=self.poll_interval,
            action_timeout=self.action_timeout, shutdown_timeout=self.shutdown_timeout,
            retry=RetryPolicy(max_retries=self.max_retries, backoff_base=self.backoff_base,
                              backoff_cap=self.backoff_cap,
                              rate_limit_max_wait=self.rate_limit_max_wait))


@config_section("dns")
class DnsConfig(BaseModel):
    """[dns]: the zone, its provider, and what the records should say."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["cloudflare", "desec"] | None = None
    domain: str | None = None
    token: Secret | None = None
    base_url: str | None = None  # the provider's API root; only tests change it
    ipv4: str | None = None
    ipv6: str | None = None
    subdomains: list[str] = Field(default_factory=lambda: list(DEFAULT_SUBDOMAINS))
    mail: bool = True
    dkim: str | None = None  # the DKIM TXT value, "v=DKIM1; k=rsa; p=…"
    dkim_selector: str = "selector"
    dmarc: str = "v=DMARC1; p=none"
    check_interval: Duration = 21600.0  # scheduled drift check; 0 turns it off
    timeout: Duration = 15.0
    max_retries: int = Field(3, ge=0, le=20)
    backoff: Duration = 1.0
    max_retry_wait: Duration = 60.0

    @model_validator(mode="after")
    def _complete(self) -> DnsConfig:
        if self.provider is None:
            if self.domain or self.token:
                raise ValueError('say which provider holds the zone: provider = "cloudflare" '
                                 'or "desec"')
            return self
        missing = [name for name in ("domain", "token", "ipv4") if getattr(self, name) is None]
        if missing:
            raise ValueError(f"with provider = \"{self.provider}\" also give "
                             + ", ".join(missing))
        self.domain_config()  # the addresses must parse
        return self

    @property
    def configured(self) -> bool:
        return self.provider is not None

    def domain_config(self) -> DomainConfig:
        return DomainConfig(domain=self.domain, ipv4=self.ipv4, ipv6=self.ipv6,
                            subdomains=tuple(self.subdomains), mail=self.mail, dkim=self.dkim,
                            dkim_selector=self.dkim_selector, dmarc=self.dmarc)

    def policy(self) -> HttpPolicy:
        return HttpPolicy(timeout=self.timeout, max_retries=self.max_retries,
                          backoff=self.backoff, max_retry_wait=self.max_retry_wait)


def read_token(secret: Secret, what: str) -> str:
    try:
        token = secret.read()
    except ConfigError as exc:
        raise UserError(f"I cannot read the {what}: {'; '.join(exc.problems)}.",
                        "Fix the token setting in the bot's config file.") from exc
    register_secret(token)
    return token


@contextmanager
def explained() -> Iterator[None]:
    """Provider and subprocess failures are expected: report them as they are."""
    try:
        yield
    except (HetznerError, DnsError, proc.ProcError) as exc:
        raise UserError(str(exc)) from exc


# -- Hetzner -------------------------------------------------------------------------------


class ManagedServer(HetznerCloud):
    """HetznerCloud plus the few calls the chat needs that the adapter does not offer yet:
    a reboot whose action id is known before waiting (to survive our own restart), reading an
    action by id, and the price list."""

    async def start_reboot(self):
        server = await self._server()
        return await self._call("requesting a reboot", self._client.servers.reboot, server)

    async def wait_action(self, action, what: str) -> ActionResult:
        return await self._wait(action, what)

    async def action(self, action_id: int):
        return await self._call("reading the action", self._client.actions.get_by_id, action_id)

    async def volume_price(self) -> Price | None:
        """EUR per GB and month from Hetzner's price list (GET /pricing); None if unreadable."""
        try:
            answer = await self._call("reading prices", self._client.request, "GET", "/pricing")
            price = answer["pricing"]["volume"]["price_per_gb_month"]
            return Price(net=Decimal(price["net"]), gross=Decimal(price["gross"]))
        except (HetznerError, KeyError, TypeError, ArithmeticError) as exc:
            log.info("volume_price_unavailable", reason=type(exc).__name__)
            return None


_clients: dict[int, tuple[str, ManagedServer]] = {}


def hetzner_settings(bot: Bot) -> HetznerConfig:
    settings = bot.config.settings("hetzner")
    if not settings.configured:
        raise UserError("Hetzner Cloud is not set up for this bot.",
                        'Add [hetzner] with token = {file = "/path/to/token"} and '
                        'server = "<server name>" to the config, then restart the bot.')
    return settings


def hetzner(bot: Bot) -> ManagedServer:
    """The bot's Hetzner client; made again when the token file changes."""
    settings = hetzner_settings(bot)
    token = read_token(settings.token, "Hetzner API token")
    cached = _clients.get(id(bot))
    if cached is None or cached[0] != token:
        cached = (token, ManagedServer(settings.provider_settings(token)))
        _clients[id(bot)] = cached
    return cached[1]


def runs_on_server(settings: HetznerConfig, facts: ServerFacts) -> bool:
    """Is the managed server the machine this bot runs on? (Its public address is local.)"""
    if settings.bot_runs_on_server is not None:
        return settings.bot_runs_on_server
    local = {ip_address(a.address.split("%")[0])
             for addresses in psutil.net_if_addrs().values() for a in addresses
             if a.family in (socket.AF_INET, socket.AF_INET6)}
    if facts.ipv4 and ip_address(facts.ipv4) in local:
        return True
    if facts.ipv6:
        network = ip_network(facts.ipv6, strict=False)
        return any(a.version == 6 and a in network for a in local)
    return False


@dataclass(frozen=True)
class Cost:
    """A monthly amount in EUR; `gross` is None when only the net price is known."""

    net: Decimal
    gross: Decimal | None

    @classmethod
    def of(cls, price: Price | None) -> Cost | None:
        return None if price is None else cls(price.net, price.gross)

    def times(self, factor: int) -> Cost:
        return Cost(self.net * factor, None if self.gross is None else self.gross * factor)

    def text(self, signed: bool = False) -> str:
        gross = "excl. VAT" if self.gross is None else f"{euro(self.gross, signed)} incl. VAT"
        return f"{euro(self.net, signed)}/month ({gross})"


def euro(amount: Decimal, signed: bool = False) -> str:
    rounded = amount.quantize(Decimal("0.01"))
    sign = ("+" if rounded >= 0 else "−") if signed else ("−" if rounded < 0 else "")
    return f"{sign}€{abs(rounded)}"


def tolerant_preview(fn: Callable[..., Awaitable[str]]) -> Callable[..., Awaitable[str]]:
    """An approval preview must not fail: a known problem becomes a warning line."""
    @functools.wraps(fn)
    async def preview(bot: Bot, **args: Any) -> str:
        try:
            return await fn(bot, **args)
        except UserError as exc:
            return f"⚠️ This will not work as asked: {exc.what}"
    return preview


def progress_steps(job: Any, total: int) -> Callable[[str], Awaitable[None]]:
    """An on_progress callback for the providers: each message is the next of `total` steps."""
    done = 0

    async def step(message: str) -> None:
        nonlocal done
        if job is not None:
            await job.progress(message, fraction=min(done / total, 1.0))
        done += 1
    return step


# -- resize: what the approval request showed ----------------------------------------------


async def remember_shown_type(bot: Bot, new_type: str, current: str) -> None:
    """The server type the approval request showed, so the resize refuses a stale plan."""
    await bot.store.put(RESIZE_SHOWN_KEY + new_type, {"current": current, "at": time.time()})


async def shown_type(bot: Bot, new_type: str) -> str | None:
    shown = await bot.store.get(RESIZE_SHOWN_KEY + new_type)
    if not shown or time.time() - shown["at"] > bot.config.approval_expiry + 60:
        return None
    return shown["current"]


# -- reboot: reported even when it restarted the bot ----------------------------------------


async def remember_reboot(bot: Bot, **mark: Any) -> None:
    current = await bot.store.get(REBOOT_KEY) or {}
    await bot.store.put(REBOOT_KEY, {**current, **mark})


async def forget_reboot(bot: Bot) -> None:
    await bot.store.put(REBOOT_KEY, None)


async def report_reboot_after_restart(bot: Bot, retry_wait: float = REPORT_RETRY_WAIT) -> None:
    """A reboot was asked for before the bot stopped: tell the room how it ended. Right after
    a reboot the network may not be up yet, so failed reads are tried again a few times."""
    mark = await bot.store.get(REBOOT_KEY)
    if not mark:
        return
    for attempt in range(1, REPORT_ATTEMPTS + 1):
        try:
            reply = await _reboot_outcome(bot, mark)
            break
        except UserError as exc:
            log.info("reboot_report_retry", attempt=attempt, reason=exc.what[:200])
            reply = Reply.error(f"I could not find out how the reboot of {mark['server']} "
                                f"(job #{mark['job_id']}) ended: {exc.what}",
                                "Check the server in the Hetzner Cloud Console.")
            if attempt < REPORT_ATTEMPTS:
                await asyncio.sleep(retry_wait)
    request = Request(mark["requester"], "", mark["room_id"], mark["event_id"], "", 0)
    await bot.send_reply(request, reply)
    await forget_reboot(bot)
    log.info("reboot_reported_after_restart", job=mark["job_id"])


async def _reboot_outcome(bot: Bot, mark: dict[str, Any]) -> Reply:
    settings, client = hetzner_settings(bot), hetzner(bot)
    with explained():
        action = await client.action(mark["action_id"]) if mark.get("action_id") else None
        deadline = time.monotonic() + settings.action_timeout
        while action is not None and action.status == "running" and time.monotonic() < deadline:
            await asyncio.sleep(settings.poll_interval)
            action = await client.action(action.id)
        facts = await client.server_facts()
    what = f"The reboot of {facts.name} (job #{mark['job_id']})"
    if action is not None and action.status == "error":
        error = action.error or {}
        return Reply.error(f"{what} failed: Hetzner's reboot action #{action.id} ended in error: "
                           f"{error.get('message', 'no message')} "
                           f"({error.get('code', 'unknown')}); the server is {facts.status}.",
                           "Check the server in the Hetzner Cloud Console.")
    if action is not None and action.status == "running":
        return Reply.error(f"{what} is still running at Hetzner (action #{action.id}); the server "
                           f"is {facts.status}.", "Check it in the Hetzner Cloud Console.")
    ago = human_duration(time.time() - mark["requested_at"])
    if action is None:
        lines = [f"ℹ️ {what}, asked {ago} ago: I stopped before Hetzner confirmed the reboot "
                 f"request; the server is {facts.status}."]
    else:
        lines = [f"✅ {facts.name} rebooted (job #{mark['job_id']}, asked {ago} ago): Hetzner's "
                 f"reboot action #{action.id} succeeded; the server is {facts.status}."]
    if mark.get("own_host"):
        lines.append(_restart_note(bot, mark["requested_at"]))
    return Reply.text("\n".join(lines))


def _restart_note(bot: Bot, requested_at: float) -> str:
    boot = psutil.boot_time()
    booted = f"{datetime.fromtimestamp(boot, ZoneInfo(bot.config.timezone)):%Y-%m-%d %H:%M %Z}"
    if boot > requested_at:
        return f"This machine booted at {booted}: the reboot restarted me as well."
    return (f"I was stopped while waiting for it (this machine is up since {booted}), so the "
            "note above about the job ending is about that wait.")


# -- volumes: mount → Hetzner volume, and growing the filesystem ----------------------------


@dataclass(frozen=True)
class Mount:
    """One mounted filesystem as findmnt reports it (sizes in bytes)."""

    target: str
    source: str
    fstype: str
    size: int
    used: int
    avail: int


@dataclass(frozen=True)
class VolumeMount:
    mount: Mount
    volume: VolumeInfo
    whole_disk: bool  # the filesystem is on the volume itself, not on a partition of it


FINDMNT_COLUMNS = "TARGET,SOURCE,FSTYPE,SIZE,USED,AVAIL"


async def mounts(settings: HetznerConfig, env: Mapping[str, str] | None = None) -> list[Mount]:
    """Every mounted filesystem (findmnt --json --bytes --list)."""
    with explained():
        result = await proc.run([settings.findmnt, "--json", "--bytes", "--list", "--output",
                                 FINDMNT_COLUMNS], timeout=30, env=env)
    if not result.ok:
        raise UserError(f"findmnt failed: {result.tail(3) or f'exit {result.returncode}'}",
                        "Check that util-linux is installed on the server.")
    try:
        return [_mount(entry) for entry in json.loads(result.stdout)["filesystems"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"findmnt gave an answer I cannot read ({type(exc).__name__}).") from exc


def _mount(entry: dict[str, Any]) -> Mount:
    def number(key: str) -> int:
        return int(entry.get(key) or 0)
    return Mount(target=entry["target"], source=entry.get("source") or "",
                 fstype=entry.get("fstype") or "", size=number("size"), used=number("used"),
                 avail=number("avail"))


async def volume_ids_of(settings: HetznerConfig, found: list[Mount]) -> dict[str, int]:
    """target → Hetzner volume id, for the mounts that are on a Hetzner volume."""
    def lookup() -> dict[str, int]:
        ids = {m.target: volume_id_for_device(m.source, settings.by_id_dir)
               for m in found if m.source.startswith("/")}
        return {target: volume_id for target, volume_id in ids.items() if volume_id is not None}
    return await asyncio.to_thread(lookup)


async def volume_at(settings: HetznerConfig, client: ManagedServer, mount: str,
                    env: Mapping[str, str] | None = None) -> VolumeMount:
    """The Hetzner volume mounted at `mount`; UserError saying why when there is none."""
    if not mount.startswith("/"):
        raise UserError(f"“{mount}” is not a mount point.", "Give the full path, e.g. /mnt/data.")
    wanted = mount.rstrip("/") or "/"
    here = next((m for m in await mounts(settings, env) if m.target == wanted), None)
    if here is None:
        raise UserError(f"Nothing is mounted at {mount}.",
                        "See !volume list for the volumes and where they are mounted.")
    volume_id = (await volume_ids_of(settings, [here])).get(here.target)
    if volume_id is None:
        raise UserError(f"{mount} ({here.source}) is not a Hetzner volume.",
                        "Only Hetzner volumes can be grown from here; see !volume list.")
    with explained():
        volume = await client.volume_for_device(here.source, settings.by_id_dir)
    disk = os.path.realpath(settings.by_id_dir / Path(volume.linux_device).name)
    return VolumeMount(here, volume, os.path.realpath(here.source) == disk)


def grow_problem(found: VolumeMount) -> str | None:
    """Why the filesystem at this mount cannot be grown by the bot, or None."""
    if found.mount.fstype not in GROWABLE:
        return (f"{found.mount.target} is {found.mount.fstype or 'an unknown filesystem'}; "
                "I can grow ext4 and xfs only")
    if not found.whole_disk:
        return (f"{found.mount.target} is on a partition of volume “{found.volume.name}”; "
                "the partition would have to be grown first, which I do not do")
    return None


def new_volume_size(current_gb: int, wanted: str) -> int:
    """`+10` → current + 10 GB; `60` (or `60GB`) → 60 GB. UserError when it is not a growth."""
    match = re.fullmatch(r"(\+)?(\d+)\s*(?:g|gb)?", wanted.strip().lower())
    if match is None:
        raise UserError(f"“{wanted}” is not a size.",
                        "Give +GB to add (e.g. +10) or the new total in GB (e.g. 60).")
    amount = int(match.group(2))
    size = current_gb + amount if match.group(1) else amount
    if size <= current_gb:
        raise UserError(f"The volume is {current_gb} GB already; {size} GB would not grow it.",
                        "Volumes can only grow: ask for more than the current size.")
    if size > MAX_VOLUME_GB:
        raise UserError(f"{size} GB is more than Hetzner's largest volume ({MAX_VOLUME_GB} GB).")
    return size


async def volume_cost_per_gb(settings: HetznerConfig, client: ManagedServer) -> Cost | None:
    """Per GB and month: Hetzner's price list, else the configured net price, else unknown."""
    price = Cost.of(await client.volume_price())
    if price is None and settings.volume_price_per_gb_month is not None:
        price = Cost(settings.volume_price_per_gb_month, None)
    return price


def grow_argv(settings: HetznerConfig, found: VolumeMount) -> list[str]:
    """resize2fs on the device (ext*), xfs_growfs on the mount point (xfs); both work online."""
    mount = found.mount
    if GROWABLE[mount.fstype] == "resize2fs":
        return [settings.resize2fs, "--", mount.source]
    return [settings.xfs_growfs, "--", mount.target]


async def grow_filesystem(settings: HetznerConfig, found: VolumeMount,
                          env: Mapping[str, str] | None = None) -> str | None:
    """Grow the filesystem to fill its (already grown) volume; what went wrong, or None."""
    try:
        result = await proc.run(grow_argv(settings, found), timeout=settings.grow_timeout,
                                env=env)
    except proc.ProcError as exc:
        return str(exc)
    if result.timed_out:
        return f"it did not finish within {human_duration(settings.grow_timeout)}"
    if not result.ok:
        return result.tail(3) or f"it ended with exit code {result.returncode}"
    return None


@dataclass(frozen=True)
class GrowOffer:
    """What a disk alert can offer for a mount that is a Hetzner volume."""

    mount: str
    volume: VolumeInfo
    new_size_gb: int
    cost: Cost | None  # of the added GB per month

    @property
    def command(self) -> str:
        return f"!volume grow {self.mount} +{self.new_size_gb - self.volume.size_gb}"

    @property
    def text(self) -> str:
        step = self.new_size_gb - self.volume.size_gb
        price = f" for {self.cost.text(signed=True)}" if self.cost else ""
        return (f"{self.mount} is Hetzner volume “{self.volume.name}” ({self.volume.size_gb} GB). "
                f"React ✅ to grow it by {step} GB to {self.new_size_gb} GB{price} "
                f"(another admin approves), or send {self.command}.")


async def grow_offer_for(settings: HetznerConfig, client: ManagedServer, mount: str,
                         env: Mapping[str, str] | None = None) -> GrowOffer | None:
    """The offer for `mount`, or None when it is no volume the bot can grow. Never raises:
    the alert that asks must go out anyway."""
    try:
        found = await volume_at(settings, client, mount, env)
        if grow_problem(found):
            return None
        size = min(found.volume.size_gb + settings.volume_grow_step_gb, MAX_VOLUME_GB)
        if size <= found.volume.size_gb:
            return None
        price = await volume_cost_per_gb(settings, client)
        cost = price.times(size - found.volume.size_gb) if price else None
        return GrowOffer(found.mount.target, found.volume, size, cost)
    except UserError as exc:
        log.info("no_grow_offer", mount=mount, reason=str(exc)[:200])
        return None


async def grow_offer(bot: Bot, mount: str) -> GrowOffer | None:
    """For the disk alerts: the grow offer for `mount`, or None (no Hetzner, not a volume)."""
    settings = bot.config.settings("hetzner")
    if not settings.configured:
        return None
    try:
        client = hetzner(bot)
    except UserError:
        return None
    return await grow_offer_for(settings, client, mount)


# -- DNS -----------------------------------------------------------------------------------


def dns_settings(bot: Bot) -> DnsConfig:
    settings = bot.config.settings("dns")
    if not settings.configured:
        raise UserError("DNS is not set up for this bot.",
                        'Add [dns] with provider = "cloudflare" or "desec", domain, '
                        'token = {file = "..."} and ipv4 to the config, then restart the bot.')
    return with_homeserver(settings, bot.config.homeserver)


def with_homeserver(settings: DnsConfig, homeserver: str) -> DnsConfig:
    """The homeserver's own name is managed too when it lies in the zone: a server_name example.org
    that delegates (.well-known/matrix/server) to chat.example.org needs chat's A/AAAA records."""
    host = (urlsplit(homeserver).hostname or "").rstrip(".").lower()
    domain = (settings.domain or "").rstrip(".").lower()
    if not domain or not host.endswith("." + domain):
        return settings
    name = host[: -len(domain) - 1]
    if name in settings.subdomains:
        return settings
    return settings.model_copy(update={"subdomains": [*settings.subdomains, name]})


@asynccontextmanager
async def dns_zone(settings: DnsConfig):
    token = read_token(settings.token, f"{settings.provider} API token")
    provider = make_provider(settings.provider, settings.domain, token,
                             base_url=settings.base_url, policy=settings.policy())
    try:
        yield provider
    finally:
        await provider.aclose()


def expected(settings: DnsConfig) -> list[DnsRecord]:
    return expected_records(settings.domain_config())


async def check_dns(settings: DnsConfig) -> list[RecordCheck]:
    with explained():
        async with dns_zone(settings) as zone:
            return await check_zone(zone, expected(settings))


def provider_label(settings: DnsConfig) -> str:
    return {"cloudflare": "Cloudflare", "desec": "deSEC"}[settings.provider]


def drift_summary(checks: list[RecordCheck]) -> str:
    """`git A missing, cloud A different`."""
    return ", ".join(f"{c.expected.name} {c.expected.type} {c.status.value}"
                     for c in checks if c.status is not Status.OK)


class DriftWatch:
    """The scheduled check: one alert while the zone differs from the config (the alerts module
    deduplicates it), a recovery notice once it matches again. Unreachable providers alert only
    after `patience` failures in a row, so one slow answer stays quiet."""

    def __init__(self, bot: Bot, patience: int = 2):
        self.bot = bot
        self.patience = patience
        self.failures = 0

    async def run(self) -> None:
        settings = with_homeserver(self.bot.config.settings("dns"), self.bot.config.homeserver)
        try:
            checks = await check_dns(settings)
        except UserError as exc:
            self.failures += 1
            log.warning("dns_check_failed", failures=self.failures, reason=exc.what[:200])
            if self.failures >= self.patience:
                await self.bot.alerts.fire(
                    UNREACHABLE_ALERT, "warning",
                    f"I cannot check the DNS records of {settings.domain}: {exc.what}",
                    exc.todo or "Check the DNS token and the provider's status page.")
            return
        self.failures = 0
        await self.bot.alerts.clear(UNREACHABLE_ALERT,
                                    f"the DNS records of {settings.domain} can be read again")
        await report_drift(self.bot, settings, checks)


async def report_drift(bot: Bot, settings: DnsConfig, checks: list[RecordCheck]) -> None:
    if any(c.status is not Status.OK for c in checks):
        await bot.alerts.fire(
            DRIFT_ALERT, "warning",
            f"DNS of {settings.domain} at {provider_label(settings)} differs from the "
            f"configuration: {drift_summary(checks)}.",
            "Send !dns check for the details, then !dns sync to fix it (needs another admin).")
    else:
        await bot.alerts.clear(DRIFT_ALERT, f"DNS of {settings.domain} matches the configuration "
                                            "again")
