"""System upgrades as the bot runs them, on top of the adapters in spbot/system/upgrade.py.

- the [upgrade] settings (tool paths and parameters, schedules, the pre-upgrade backup flag);
- the check, upgrade and rollback flows shared by the chat commands (commands/upgrade.py) and the
  scheduler, with the tool's last log lines streamed into the job's progress message;
- the daily check (posted only when the pending set is new), the optional automatic upgrade window,
  and the reboot-required reminder;
- the reboot, whose intent is kept in the store so that after start-up the bot says it is back after
  a planned reboot, or that the server restarted without one (the kernel's boot id tells).

Deployment notes, the why behind a few choices here:
- The package manager runs as a child of the bot, inside the bot's service. If that service is
  restarted halfway through (needrestart on Debian/Ubuntu, or a changed unit during `nixos-rebuild
  switch`), systemd kills the tool with it. So apt runs with NEEDRESTART_MODE=l (list, never
  restart), and on NixOS the bot's unit should set `restartIfChanged = false`.
- `!cancel` is deferred once dpkg or the NixOS activation has started: killing either halfway
  leaves a half-upgraded system. Before that point (downloads, builds) cancelling is safe.
- The tools need root: run the bot as root (as SelfPrivacy's own API does) or point the tool paths
  at wrappers that are allowed to run them.
"""
from __future__ import annotations

import asyncio
import importlib
import re
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Awaitable, Callable

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from .scheduler import cron_trigger

from .config import Duration, config_section
from .context import UserError
from .jobs import JobRefused
from .logs import get_logger
from .registry import on_startup
from .render import Reply, human_duration, mention, table
from .system.osinfo import OsInfo, OsInfoError, read_os_info
from .system.upgrade import (ActivationFailed, AptDriver, AptParams, BuildFailed, CheckResult,
                             Generation, NixosDriver, NixosParams, PackageManagerBusy, RebootParams,
                             RebootStatus, UpgradeError, UpgradeResult, driver_for, reboot)

if TYPE_CHECKING:
    from .bot import Bot
    from .jobs import Job

log = get_logger(__name__)

LOCKS = frozenset({"system", "packages"})      # upgrade, rollback: exclusive with backups and checks
CHECK_LOCKS = frozenset({"packages"})          # a check only needs apt/nix to itself
INTENT_KEY = "upgrade:reboot_intent"
BOOT_KEY = "upgrade:boot_id"
LAST_CHECK_KEY = "upgrade:last_check"
POSTED_KEY = "upgrade:posted_pending"
REBOOT_ALERT = "upgrade:reboot-required"
CHECK_ALERT = "upgrade:check-failed"
SHOWN_CHANGES = 15
SHOWN_PENDING = 30


# -- settings ---------------------------------------------------------------------------------

def _valid_cron(expr: str) -> str:
    cron_trigger(expr, "UTC")
    return expr


Cron = Annotated[str, AfterValidator(_valid_cron)]


class AptSettings(AptParams):
    model_config = ConfigDict(extra="forbid")


class NixosSettings(NixosParams):
    model_config = ConfigDict(extra="forbid")


class RebootSettings(RebootParams):
    model_config = ConfigDict(extra="forbid")


@config_section("upgrade")
class UpgradeSettings(BaseModel):
    """[upgrade], with [upgrade.apt], [upgrade.nixos] and [upgrade.reboot] for the tools."""
    model_config = ConfigDict(extra="forbid")

    os_release: Path | None = Field(
        None,
        description="The os-release file that tells Debian, Ubuntu and NixOS apart (unset: /etc/os-release, then "
                    "/usr/lib/os-release).")
    apt: AptSettings = Field(
        default_factory=AptSettings,
        description="Debian and Ubuntu: apt-get and its limits.")
    nixos: NixosSettings = Field(
        default_factory=NixosSettings,
        description="NixOS: nixos-rebuild, the flake and their limits.")
    reboot: RebootSettings = Field(default_factory=RebootSettings, description="How the machine is rebooted.")
    pre_upgrade_backup: bool = Field(
        True,
        description="Back up every service before an upgrade, when backups are set up.")
    check_enabled: bool = Field(
        True,
        description="Check daily for pending updates and post when the set of pending updates changes.")
    check_cron: Cron = Field("0 6 * * *", description="When the daily check runs (crontab line).")
    auto_upgrade: bool = Field(False, description="Upgrade without approval in the window below.")
    auto_cron: Cron = Field("0 4 * * 0", description="When the automatic upgrade window opens (crontab line).")
    reboot_reminder: Duration = Field(86400.0, description="How often the \"reboot needed\" alert repeats.")
    boot_id_file: Path = Field(
        Path("/proc/sys/kernel/random/boot_id"),
        description="Where the kernel's boot id is read (tells a reboot from a restart of the bot).")
    uptime_file: Path = Field(Path("/proc/uptime"), description="Where the machine's uptime is read.")
    notice_wait: Duration = Field(15.0, description="How long a reboot waits for its notice to reach the room.")


def settings_of(bot: "Bot") -> UpgradeSettings:
    return bot.config.settings("upgrade")


# -- this system ------------------------------------------------------------------------------

def os_info(settings: UpgradeSettings) -> OsInfo:
    try:
        return read_os_info(settings.os_release)
    except OsInfoError as exc:
        raise UserError(f"I cannot tell which operating system this is: {exc}",
                        "Set [upgrade] os_release in the bot's config to the os-release file.")


# A NixOS service gets neither the system's tools on PATH nor NIX_PATH and HOME, which
# nixos-rebuild needs; NixOS's own nixos-upgrade.service sets them the same way.
NIXOS_ENV_DEFAULTS = {
    "HOME": "/root",
    "NIX_PATH": "nixpkgs=/nix/var/nix/profiles/per-user/root/channels/nixos"
                ":nixos-config=/etc/nixos/configuration.nix:/nix/var/nix/profiles/per-user/root/channels",
}
NIXOS_PATH = ("/run/wrappers/bin", "/run/current-system/sw/bin", "/nix/var/nix/profiles/default/bin")


def nixos_env(params: NixosParams) -> dict[str, str]:
    env = {**NIXOS_ENV_DEFAULTS, **params.base_env()}
    present = [p for p in env.get("PATH", "").split(":") if p]
    env["PATH"] = ":".join(present + [p for p in NIXOS_PATH if p not in present])
    return env


def driver(settings: UpgradeSettings, info: OsInfo) -> AptDriver | NixosDriver:
    apt = settings.apt.model_copy(update={"env": {**settings.apt.base_env(), "NEEDRESTART_MODE": "l"}})
    nixos = settings.nixos.model_copy(update={"env": nixos_env(settings.nixos)})
    try:
        return driver_for(info, apt, nixos)
    except UpgradeError as exc:
        raise UserError(str(exc), "Upgrade this server by hand; spbot drives apt and nixos-rebuild only.")


def system_driver(bot: "Bot") -> tuple[OsInfo, AptDriver | NixosDriver]:
    settings = settings_of(bot)
    info = os_info(settings)
    return info, driver(settings, info)


def boot_id(settings: UpgradeSettings) -> str | None:
    try:
        return settings.boot_id_file.read_text().strip() or None
    except OSError:
        return None


def uptime(settings: UpgradeSettings) -> float | None:
    try:
        return float(settings.uptime_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# -- streaming the tool's log into the job ----------------------------------------------------

_STEPS = (
    (re.compile(r"^(Hit|Get|Ign|Err):\d+ "), "refreshing the package lists"),
    (re.compile(r"^Unpacking (\S+)"), "installing {}"),
    (re.compile(r"^Setting up (\S+)"), "configuring {}"),
    (re.compile(r"^Removing (\S+)"), "removing {}"),
    (re.compile(r"^Processing triggers"), "finishing (triggers)"),
    (re.compile(r"^(unpacking channels|building Nix)"), "updating the channels"),
    (re.compile(r"^building the system configuration"), "building the new system"),
    (re.compile(r"^(stopping the following units|activating the configuration)"), "switching to it"),
)
# From these lines on, the system is being changed: stopping now would leave it half-changed.
_POINT_OF_NO_RETURN = re.compile(
    r"^(Preconfiguring packages|\(Reading database|Preparing to unpack|Unpacking |Setting up |Removing "
    r"|switching profile from version|stopping the following units|activating the configuration)")


class LiveLog:
    """The tool's output as the job's progress: the last lines and a step guessed from them.

    `job.progress` only stores and schedules a rate-limited edit, so calling it per line is cheap.
    """

    def __init__(self, job: "Job | None", step: str, lines: int = 12):
        self.job = job
        self.step = step
        self.lines: deque[str] = deque(maxlen=lines)
        self.changing = False
        self.note = ""                              # stays beside every later step

    async def __call__(self, line: str) -> None:
        self.lines.append(line)
        self.changing = self.changing or bool(_POINT_OF_NO_RETURN.match(line))
        for pattern, label in _STEPS:
            if match := pattern.match(line):
                self.step = label.format(match[1]) if "{}" in label else label
                break
        await self.show(self.step)

    async def show(self, step: str, lines: list[str] | None = None) -> None:
        self.step = step
        if self.job is not None:
            await self.job.progress(step + self.note,
                                    lines=lines if lines is not None else list(self.lines))


async def guarded(live: LiveLog, work: Awaitable[Any]) -> Any:
    """Run `work`; an admin's !cancel stops it only while nothing has been changed yet.

    Once dpkg or the activation has started, the cancel is noted and the work finishes first. A bot
    shutdown (no canceller) still cancels: systemd would kill the process tree anyway.
    """
    task = asyncio.ensure_future(work)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            job = live.job
            if task.done() or job is None or job.cancelled_by is None or not live.changing:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise
            asyncio.current_task().uncancel()    # the cancel is handled: later awaits are not cancelled
            log.warning("cancel_deferred", job=job.id, by=job.cancelled_by)
            live.note = (f" · cannot stop now (asked by {job.cancelled_by}): the system is being "
                         "changed, finishing first")
            await live.show(live.step)


# -- pre-upgrade backup -----------------------------------------------------------------------

def _backups_module():
    """spbot.backups (issue 6), imported on use: upgrades work without it."""
    try:
        return importlib.import_module("spbot.backups")
    except ModuleNotFoundError as exc:
        if exc.name != "spbot.backups":
            raise
        return None


def backup_skipped(bot: "Bot", wanted: bool) -> str | None:
    """Why no backup runs before the upgrade, or None when one will."""
    if not wanted:
        return "no backup first (--no-backup)"
    if not settings_of(bot).pre_upgrade_backup:
        return "no backup first (pre_upgrade_backup = false)"
    backups = _backups_module()
    if backups is None or not backups.backups_of(bot).settings.services:
        return "no backup first: no services are set up in [backup]"
    return None


async def pre_upgrade_backup(bot: "Bot", live: LiveLog, wanted: bool) -> str:
    """A snapshot of every configured service before the upgrade; a line for the final report.
    Any failure stops here, before anything is upgraded."""
    skipped = backup_skipped(bot, wanted)
    if skipped:
        return skipped
    backups = _backups_module()

    async def progress(step: str, fraction: float | None) -> None:
        await live.show(f"backup before the upgrade: {step}", [])

    await progress("starting", None)
    try:
        outcomes = await backups.run_and_alert(bot, (), "manual", progress)
    except UserError as exc:
        outcomes, error = [], exc
    else:
        failed = [o for o in outcomes if not o.ok]
        error = UserError("; ".join(f"{o.service}: {o.error}" for o in failed), failed[0].todo) \
            if failed else None
    if error is not None:
        todo = error.todo.rstrip(". ")
        raise UserError(f"the backup before the upgrade failed, so nothing was upgraded: {error.what}",
                        (f"{todo[0].upper()}{todo[1:]}; or " if todo else "") +
                        "send !upgrade --no-backup to upgrade without a backup.")
    return "backed up first: " + ", ".join(f"{o.service} (snapshot {o.snapshot_id})" for o in outcomes)


# -- flows ------------------------------------------------------------------------------------

class PackageManagerBusyError(UserError):
    """apt/dpkg is locked by another process: nothing was changed, try again later."""


async def check(bot: "Bot", job: "Job | None", refresh: bool = True) -> tuple[OsInfo, CheckResult]:
    info, tool = system_driver(bot)
    live = LiveLog(job, "checking for updates")
    await live.show(live.step)
    try:
        result = await guarded(live, tool.check(refresh=refresh, on_line=live))
    except UpgradeError as exc:
        raise await failure(live, exc, "checking for updates")
    await remember_check(bot, info, result)
    return info, result


async def upgrade(bot: "Bot", job: "Job | None", backup: bool = True) -> tuple[OsInfo, UpgradeResult, str]:
    """The pre-upgrade backup, then the upgrade with its log streamed into the job's progress."""
    info, tool = system_driver(bot)
    live = LiveLog(job, "starting")
    backup_line = await pre_upgrade_backup(bot, live, backup)
    await live.show("upgrading")
    try:
        result = await guarded(live, tool.upgrade(on_line=live))
    except UpgradeError as exc:
        raise await failure(live, exc, "the upgrade")
    await bot.store.put(LAST_CHECK_KEY, None)       # what was pending is stale now
    return info, result, backup_line


async def rollback(bot: "Bot", job: "Job | None") -> tuple[OsInfo, UpgradeResult]:
    info, tool = system_driver(bot)
    if not isinstance(tool, NixosDriver):
        raise rollback_unavailable(info)
    live = LiveLog(job, "switching to the previous generation")
    await live.show(live.step)
    try:
        return info, await guarded(live, tool.rollback(on_line=live))
    except UpgradeError as exc:
        raise await failure(live, exc, "the rollback")


async def generations(bot: "Bot") -> tuple[OsInfo, list[Generation]]:
    info, tool = system_driver(bot)
    if not isinstance(tool, NixosDriver):
        raise UserError(f"there are no system generations on {info.pretty_name}: they are a NixOS "
                        "feature", "Send !upgrade check to see what is pending.")
    try:
        return info, await tool.generations()
    except UpgradeError as exc:
        raise UserError(str(exc), "Check that nix-env works on the server.")


def rollback_unavailable(info: OsInfo) -> UserError:
    return UserError(f"!rollback is not available on {info.pretty_name}: apt replaces packages in "
                     "place and keeps no previous system to go back to (that is a NixOS feature).",
                     "To undo one package, install its older version by hand (apt-get install "
                     "name=version), or restore from a backup.")


async def failure(live: LiveLog, exc: UpgradeError, what: str) -> UserError:
    """A tool failure as a clear chat error; its last log lines stay in the progress message."""
    if exc.tail:
        await live.show(f"{what} failed", exc.tail[-12:])
    if isinstance(exc, PackageManagerBusy):
        return PackageManagerBusyError(f"{what} did not start: {exc}", "Nothing was changed. Wait a "
                                       "few minutes (another upgrade is probably running) and send "
                                       "the command again.")
    if isinstance(exc, ActivationFailed):
        return UserError(str(exc), "Some services may not have started: see the log lines above, "
                         "and send !rollback to go back to the previous generation.")
    if isinstance(exc, BuildFailed):
        return UserError(str(exc), "The log lines above show the error; fix the configuration (or "
                         "wait for a fixed package) and try again.")
    return UserError(f"{what} stopped: {exc}", "The last log lines are in the progress message "
                     "above. The server may be half-upgraded: send !upgrade check, and ask someone "
                     "with shell access if it keeps failing.")


# -- rendering --------------------------------------------------------------------------------

def reboot_line(status: RebootStatus) -> str:
    if not status.required:
        return "No reboot needed."
    why = f" ({', '.join(status.reasons[:5])})" if status.reasons else ""
    return f"🔁 A reboot is needed{why}: send !reboot when it suits you."


def deferred_cancel_line(job: "Job | None") -> list[str]:
    if job is None or job.cancelled_by is None:
        return []
    return [f"(The cancel from {job.cancelled_by} came while the system was being changed, so the "
            "work was finished first.)"]


def pending_key(result: CheckResult) -> list[str]:
    """The pending set, for telling a new one from one already posted."""
    return sorted([f"{u.name} {u.new or ''}".strip() for u in result.updates] +
                  [f"{name} (remove)" for name in result.removals])


def pending_summary(result: CheckResult) -> str:
    if not result.pending:
        return "up to date"
    if result.family == "nixos":
        built = sum(1 for u in result.updates if u.origin == "build")
        size = f" ({result.download})" if result.download else ""
        return f"{built} to build, {len(result.updates) - built} to download{size}"
    security = len(result.security_updates)
    parts = [f"{len(result.updates)} update(s) pending" + (f" ({security} security)" if security else "")]
    if result.removals:
        parts.append(f"{len(result.removals)} to remove")
    return ", ".join(parts)


def render_check(info: OsInfo, result: CheckResult) -> Reply:
    warnings = [f"⚠️ {w}" for w in result.warnings[:3]]
    if not result.pending:
        return Reply.text("\n".join([f"✅ {info.pretty_name} is up to date.",
                                     reboot_line(result.reboot), *warnings]))
    title = f"📦 {info.pretty_name}: {pending_summary(result)}."
    shown = result.updates[:SHOWN_PENDING]
    if result.family == "nixos":
        listing = table(["To build or download", "How"], [[u.name, u.origin or ""] for u in shown],
                        title=title)
    else:
        listing = table(["Package", "Installed", "New"],
                        [[u.name + (" 🔒" if u.security else ""), u.current or "(new)", u.new or ""]
                         for u in shown], title=title)
    more = len(result.updates) - len(shown)
    after = ([f"… and {more} more"] if more > 0 else []) + \
        (["🔒 security update"] if any(u.security for u in shown) else []) + \
        ([f"To remove: {', '.join(result.removals)}"] if result.removals else []) + \
        [reboot_line(result.reboot), "Send !upgrade to install (needs another admin's approval).",
         *warnings]
    return listing + Reply.text("\n".join(after))


def render_upgrade(info: OsInfo, result: UpgradeResult, backup_line: str, job: "Job | None") -> Reply:
    took = human_duration(result.duration)
    if result.family == "nixos":
        what = (f"generation {result.generation_before} → {result.generation_after}" if result.changed
                else f"nothing changed, still generation {result.generation_after}")
        lines = [f"✅ Upgrade of {info.pretty_name} done in {took}: {what}."]
    elif not result.changed:
        lines = [f"✅ {info.pretty_name} was already up to date (nothing changed, {took})."]
    else:
        s = result.summary
        counts = (f"{s.upgraded} upgraded, {s.newly_installed} newly installed, {s.removed} removed"
                  if s else f"{len(result.changes)} package(s) changed")
        lines = [f"✅ Upgrade of {info.pretty_name} done in {took}: {counts}."]
        lines += [f"  {c.name} {c.old or '(new)'} → {c.new or '(removed)'}"
                  for c in result.changes[:SHOWN_CHANGES]]
        if len(result.changes) > SHOWN_CHANGES:
            lines.append(f"  … and {len(result.changes) - SHOWN_CHANGES} more")
    lines += [reboot_line(result.reboot), backup_line[0].upper() + backup_line[1:] + ".",
              *deferred_cancel_line(job)]
    return Reply.text("\n".join(lines))


def render_rollback(info: OsInfo, result: UpgradeResult, job: "Job | None") -> Reply:
    return Reply.text("\n".join([
        f"↩️ Rolled back {info.pretty_name} in {human_duration(result.duration)}: generation "
        f"{result.generation_before} → {result.generation_after}.", reboot_line(result.reboot),
        *deferred_cancel_line(job)]))


def render_generations(info: OsInfo, found: list[Generation]) -> Reply:
    rows = [[str(g.number) + (" (current)" if g.current else ""), f"{g.created:%Y-%m-%d %H:%M}",
             g.nixos_version or ""] for g in reversed(found)]
    return table(["Generation", "Built", "NixOS version"], rows,
                 title=f"System generations of {info.pretty_name}, newest first (!rollback goes "
                       "back one):")


# -- the last check, the scheduled check and the reminders ------------------------------------

async def remember_check(bot: "Bot", info: OsInfo, result: CheckResult) -> None:
    await bot.store.put(LAST_CHECK_KEY, {"at": time.time(), "os": info.pretty_name,
                                         "summary": pending_summary(result),
                                         "reboot": result.reboot.required})


async def last_check_line(bot: "Bot", info: OsInfo) -> str:
    last = await bot.store.get(LAST_CHECK_KEY)
    if not last or last["os"] != info.pretty_name:
        return "No recent check: send !upgrade check first to see what would change."
    return f"Last check {human_duration(time.time() - last['at'])} ago: {last['summary']}."


async def remind_reboot(bot: "Bot", status: RebootStatus) -> None:
    if status.required:
        why = f" ({', '.join(status.reasons[:5])})" if status.reasons else ""
        await bot.alerts.fire(REBOOT_ALERT, "warning", f"the server needs a reboot to finish its "
                              f"updates{why}", "send !reboot when it suits you (needs approval)",
                              renotify=settings_of(bot).reboot_reminder)
    else:
        await bot.alerts.clear(REBOOT_ALERT, "the server no longer needs a reboot")


async def scheduled_check(bot: "Bot", job: "Job") -> Reply | None:
    """The daily check: posts the pending updates only when this set was not posted before."""
    try:
        info, result = await check(bot, None)
    except PackageManagerBusyError as exc:      # unattended-upgrades at work: next time then
        log.info("scheduled_check_skipped", reason=exc.what)
        return None
    except UserError as exc:
        await bot.alerts.fire(CHECK_ALERT, "warning", f"the daily upgrade check failed: {exc.what}",
                              "send !upgrade check to see the details", renotify=86400)
        return None
    await bot.alerts.clear(CHECK_ALERT, "the daily upgrade check works again")
    await remind_reboot(bot, result.reboot)
    pending = pending_key(result)
    if pending == await bot.store.get(POSTED_KEY, []):
        return None
    await bot.store.put(POSTED_KEY, pending)
    return render_check(info, result) if pending else None


async def automatic_upgrade(bot: "Bot", job: "Job") -> Reply:
    """The upgrade window: no approval (the config enabled it), always reported."""
    try:
        info, result, backup_line = await upgrade(bot, job)
    except UserError as exc:
        return mention(bot.config.admins, f"⚠️ The automatic upgrade failed: {exc.what}\n{exc.todo}")
    await remind_reboot(bot, result.reboot)
    return Reply.text("🕓 Automatic upgrade (upgrade window):") + render_upgrade(info, result,
                                                                               backup_line, job)


def _safely(name: str, work: Callable[["Bot", "Job"], Awaitable[Reply | None]], bot: "Bot"):
    """Scheduled work must never raise: the job runner would leave the job marked as running."""
    async def run(job: "Job") -> Reply | None:
        try:
            return await work(bot, job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("scheduled_work_failed", work=name)
            return Reply.error(f"{name} failed: an internal error ({exc.__class__.__name__}).",
                               "The details are in the bot's log.")
    return run


async def _start_scheduled(bot: "Bot", name: str, work, locks: frozenset[str]) -> None:
    busy = [lock for lock in locks if lock in bot.jobs.held]
    if busy and work is scheduled_check:
        # An upgrade is running: checking now is moot, and waiting would post a "waiting" message.
        log.info("scheduled_skipped", work=name, reason=f"lock {busy[0]} held")
        return
    try:
        await bot.jobs.run_scheduled(name, _safely(name, work, bot), locks=locks)
    except JobRefused as exc:
        log.info("scheduled_skipped", work=name, reason=str(exc))


def schedule(bot: "Bot", settings: UpgradeSettings) -> None:
    timezone = bot.config.timezone
    try:
        system_driver(bot)
    except UserError as exc:                    # nothing to check or upgrade here, every day
        log.warning("upgrades_not_scheduled", reason=exc.what)
        return
    if settings.check_enabled:
        bot.scheduler.add_job(_start_scheduled, cron_trigger(settings.check_cron, timezone),
                              args=[bot, "upgrade check (scheduled)", scheduled_check, CHECK_LOCKS],
                              id="upgrade-check", name="upgrade check", replace_existing=True)
    if settings.auto_upgrade:
        bot.scheduler.add_job(_start_scheduled, cron_trigger(settings.auto_cron, timezone),
                              args=[bot, "upgrade (automatic)", automatic_upgrade, LOCKS],
                              id="upgrade-auto", name="automatic upgrade", replace_existing=True)


# -- reboot -----------------------------------------------------------------------------------

async def plan_reboot(bot: "Bot", requester: str, room_id: str, event_id: str) -> None:
    """Remember that this reboot was asked for, and from which boot, before asking systemd."""
    await bot.store.put(INTENT_KEY, {"at": time.time(), "by": requester, "room_id": room_id,
                                     "event_id": event_id, "boot_id": boot_id(settings_of(bot))})


async def reboot_when_said(bot: "Bot", job: "Job", room_id: str, event_id: str) -> None:
    """Reboot once the job has ended and its notice has left: the bot goes down with the machine."""
    settings = settings_of(bot)
    task = bot.jobs.tasks.get(job.id)
    if task is not None:
        await asyncio.wait([task], timeout=60)
    deadline = time.monotonic() + settings.notice_wait
    while await bot.outbox.pending() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    log.warning("rebooting", requester=job.requester)
    try:
        await reboot(settings.reboot)
    except UpgradeError as exc:
        await bot.store.put(INTENT_KEY, None)
        detail = f"\n{exc.tail[-1]}" if exc.tail else ""
        reply = Reply.error(f"the reboot did not happen: {exc}{detail}",
                            "The server is still running as before. Check that the bot may run "
                            "systemctl reboot, or reboot it from the provider's console.")
        content = reply.content()
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": event_id}}
        await bot.outbox.send(room_id, content)


async def announce_start(bot: "Bot") -> None:
    """After start-up: back after a planned reboot, a reboot that did not happen, or an unplanned one.

    The kernel's boot id changes at every boot, so unlike uptimes it is not fooled by clock changes.
    A restart of the bot alone (same boot, no reboot asked) stays quiet.
    """
    settings = settings_of(bot)
    current, up = boot_id(settings), uptime(settings)
    intent = await bot.store.get(INTENT_KEY)
    previous = await bot.store.get(BOOT_KEY)
    await bot.store.put(BOOT_KEY, current)
    if intent:
        await bot.store.put(INTENT_KEY, None)
    rebooted = current is not None and current != (intent or {}).get("boot_id", previous)
    if intent and not rebooted:
        await _say_in(bot, intent, Reply.text(
            f"⚠️ I restarted, but the server did not reboot ({_uptime_text(up)}): the reboot asked by "
            f"{intent['by']} {human_duration(time.time() - intent['at'])} ago did not happen.\n"
            "Send !reboot again if it is still needed."))
        return
    if not rebooted or (previous is None and not intent):
        return                                      # a restart of the bot only, or its first start
    status = await _reboot_status(bot)
    if intent:
        await _say_in(bot, intent, Reply.text(f"✅ Back after a reboot, {_uptime_text(up)} (asked by "
                                              f"{intent['by']}).\n{reboot_line(status)}"))
    else:
        await bot.notify(mention(bot.config.admins, (
            f"⚠️ The server restarted without a !reboot (power cut, crash, or a reboot from outside "
            f"the bot); I am back, {_uptime_text(up)}.\n{reboot_line(status)}\nIf that was not "
            "expected, look at the provider's console and !status.")))
    if not status.required:
        await bot.alerts.clear(REBOOT_ALERT, "the server no longer needs a reboot")


def _uptime_text(up: float | None) -> str:
    if up is None:
        return "uptime unknown"
    return f"up {up:.0f} s" if up < 600 else f"up {human_duration(up)}"


async def _reboot_status(bot: "Bot") -> RebootStatus:
    try:
        return await system_driver(bot)[1].reboot_status()
    except UserError:
        return RebootStatus()


async def _say_in(bot: "Bot", intent: dict, reply: Reply) -> None:
    content = reply.content()
    if intent.get("event_id"):
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": intent["event_id"]}}
    for room in [intent["room_id"]] if intent.get("room_id") else bot.admin_rooms():
        await bot.outbox.send(room, content)


@on_startup
async def start_upgrades(bot: "Bot") -> None:
    await announce_start(bot)
    schedule(bot, settings_of(bot))
