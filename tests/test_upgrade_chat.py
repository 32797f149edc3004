"""System upgrades through the real chat path: E2EE commands to a real bot process, approvals by
another admin, jobs with live log lines in the progress message, scheduled checks and restarts.

Nothing here upgrades, rebuilds or reboots this machine: every tool the bot runs (apt-get,
nixos-rebuild, nix-env, nix, systemctl) is a fakebin executable given to the bot by absolute path,
printing the real tools' output formats. os-release, the boot id and the uptime are files in a
temporary directory. The one real tool call is `apt-get -s dist-upgrade`, a simulation.
"""
from __future__ import annotations

import asyncio
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from spbot.system.osinfo import read_os_info
from spbot.features.upgrade.drivers.apt import AptDriver, AptParams
from spbot.features.upgrade.render import SHOWN_PENDING, render_check
from tests.fakebin import FakeBin, Rule
from tests.test_approvals import final_edit, request_for, result_reply
from tests.test_osinfo import DEBIAN_12, NIXOS_24_05, UBUNTU_24_04
from tests.test_upgrade import (APT_UPDATE, BUILD_FAILURE, DPKG_LOCKED, DRY_BUILD_PENDING, SIM_NOTHING,
                                SIM_PENDING, SWITCH_LOG, UPGRADE_LOG, nix_env_rules, then_current)

from .conftest import wait_answering

if TYPE_CHECKING:
    from .conftest import TestBot

pytestmark = pytest.mark.matrix


@dataclass
class Rig:
    """A bot with its own fake world: tools, os-release, boot id, uptime, reboot flag files."""
    bot: "TestBot"
    bins: FakeBin
    root: Path

    def os_release(self, text: str) -> None:
        (self.root / "os-release").write_text(text)

    def boot(self, uptime: float, new_boot: bool = True) -> None:
        if new_boot:
            (self.root / "boot_id").write_text(str(uuid.uuid4()) + "\n")
        (self.root / "uptime").write_text(f"{uptime:.2f} 1.00\n")

    def calls(self, tool: str) -> list[list[str]]:
        return [c.argv for c in self.bins.calls(tool)]


def upgrade_config(root: Path, bins: FakeBin) -> str:
    b = bins.dir
    return f"""
[upgrade]
os_release = "{root}/os-release"
boot_id_file = "{root}/boot_id"
uptime_file = "{root}/uptime"
notice_wait = "5s"
check_enabled = false
[upgrade.apt]
apt_get = "{b}/apt-get"
reboot_required_file = "{root}/reboot-required"
reboot_required_pkgs = "{root}/reboot-required.pkgs"
[upgrade.nixos]
nixos_rebuild = "{b}/nixos-rebuild"
nix_env = "{b}/nix-env"
nix = "{b}/nix"
profile = "{root}/profiles/system"
booted_system = "{root}/booted-system"
current_system = "{root}/current-system"
[upgrade.reboot]
systemctl = "{b}/systemctl"
[backup.repository]
kind = "local"
path = "{root}/restic-repo"
[backup.services.files]
paths = ["{root}/live/files"]
"""


@pytest.fixture(scope="module")
async def rig(make_bot, tmp_path_factory) -> Rig:
    """One bot; tests rewrite its os-release to be Debian, Ubuntu or NixOS. No schedules (the last
    test turns them on). Every tool it may run is a fakebin executable, named by absolute path."""
    root = tmp_path_factory.mktemp("upgrade")
    bins = FakeBin(root)
    for tool in ("apt-get", "nixos-rebuild", "nix", "systemctl"):
        bins.add(tool, [])
    bins.add("nix-env", nix_env_rules(41))
    (root / "live" / "files").mkdir(parents=True)
    (root / "live" / "files" / "notes.txt").write_text("the family's notes\n")
    (root / "os-release").write_text(DEBIAN_12)
    (root / "boot_id").write_text(str(uuid.uuid4()) + "\n")
    (root / "uptime").write_text("86400.00 1.00\n")
    bot = await make_bot("upgrade", extra=upgrade_config(root, bins), env=bins.env())
    return Rig(bot, bins, root)


def from_bot(bot: "TestBot", needle: str, reply_to: str | None = None):
    return lambda e: (e.sender == bot.user_id and needle in e.body
                      and (reply_to is None or e.reply_to == reply_to))


async def approved(alice, bob, bot: "TestBot", text: str) -> str:
    """Send a dangerous command as alice, approve it as bob; returns the command's event id."""
    command_id, _, rid = await request_for(alice, bot, text)
    await bob.command(bot.room_id, f"!approve {rid}", bot.user_id)
    return command_id


async def progress_of(client, bot: "TestBot", command_id: str, title: str):
    return await client.wait_for(lambda e: e.sender == bot.user_id and e.reply_to == command_id
                                 and f"⏳ {title} — job #" in e.body, timeout=20)


def apt_rules(simulation: str = SIM_NOTHING, upgrade: Rule | None = None) -> list[Rule]:
    rules = [Rule(match=["update"], stdout=APT_UPDATE),
             Rule(match=["-s", "dist-upgrade"], stdout=simulation)]
    return rules + ([upgrade] if upgrade else [])


# -- check ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, name", [(DEBIAN_12, "Debian GNU/Linux 12 (bookworm)"),
                                        (UBUNTU_24_04, "Ubuntu 24.04.1 LTS"),
                                        (NIXOS_24_05, "NixOS 24.05 (Uakari)")])
async def test_check_nothing_pending_names_the_detected_system(alice, rig, text, name):
    rig.os_release(text)
    rig.bins.add("apt-get", apt_rules(SIM_NOTHING))
    rig.bins.add("nixos-rebuild", [Rule(match=["dry-build", "--upgrade"], stderr="unpacking channels...\n"
                                        "building the system configuration...\n")])
    rig.bins.clear()
    command_id = await alice.send(rig.bot.room_id, "!upgrade check")
    reply = await result_reply(alice, command_id, rig.bot, "is up to date")
    assert reply.body.startswith(f"✅ {name} is up to date.")
    assert "No reboot needed." in reply.body
    if "NixOS" in name:
        assert rig.calls("nixos-rebuild") == [["dry-build", "--upgrade"]] and not rig.calls("apt-get")
    else:
        assert rig.calls("apt-get") == [["update"], ["-s", "dist-upgrade"]]
        assert all(c.env["DEBIAN_FRONTEND"] == "noninteractive" for c in rig.bins.calls("apt-get"))


async def test_check_pending_on_debian_lists_versions_and_reboot(alice, rig):
    rig.os_release(DEBIAN_12)
    rig.bins.add("apt-get", apt_rules(SIM_PENDING))
    (rig.root / "reboot-required").write_text("*** System restart required ***\n")
    (rig.root / "reboot-required.pkgs").write_text("linux-image-6.1.0-27-amd64\n")
    try:
        command_id = await alice.send(rig.bot.room_id, "!upgrade check")
        reply = await result_reply(alice, command_id, rig.bot, "pending")
    finally:
        (rig.root / "reboot-required").unlink()
    body = reply.body
    assert body.startswith("📦 Debian GNU/Linux 12 (bookworm): 5 update(s) pending (3 security), "
                           "1 to remove.")
    lines = body.splitlines()
    assert lines[1:6] == ["libgcrypt20 🔒 — 1.10.1-3 → 1.10.1-3+deb12u1",          # security first
                          "linux-image-6.1.0-28-amd64 🔒 — (new) → 6.1.119-1",
                          "linux-image-amd64 🔒 — 6.1.115-1 → 6.1.119-1",
                          "base-files — 12.4+deb12u11 → 12.4+deb12u15",
                          "openssh-client — 1:9.2p1-2+deb12u6 → 1:9.2p1-2+deb12u10"]
    assert "To remove: oldlib1" in body
    assert "🔁 A reboot is needed (linux-image-6.1.0-27-amd64)" in body
    assert "<li><b>base-files</b> — 12.4+deb12u11 → 12.4+deb12u15</li>" in reply.content["formatted_body"]
    assert "Send !upgrade to install" in body and "more: !upgrade check --all" not in body


async def test_cached_check_skips_the_package_list_refresh(alice, rig):
    rig.os_release(UBUNTU_24_04)
    rig.bins.add("apt-get", apt_rules(SIM_NOTHING))
    rig.bins.clear()
    command_id = await alice.send(rig.bot.room_id, "!upgrade check --cached")
    await result_reply(alice, command_id, rig.bot, "Ubuntu 24.04.1 LTS is up to date")
    assert rig.calls("apt-get") == [["-s", "dist-upgrade"]]


async def test_check_pending_on_nixos(alice, rig):
    rig.os_release(NIXOS_24_05)
    rig.bins.add("nixos-rebuild", [Rule(match=["dry-build", "--upgrade"], stderr=DRY_BUILD_PENDING)])
    command_id = await alice.send(rig.bot.room_id, "!upgrade check")
    reply = await result_reply(alice, command_id, rig.bot, "to build")
    assert "NixOS 24.05 (Uakari): 3 to build, 2 to download (30.51 MiB download, 150.22 MiB unpacked)" \
        in reply.body
    assert "linux-6.6.32" in reply.body


# -- upgrade on Debian ------------------------------------------------------------------------

async def test_upgrade_streams_the_log_and_summarises(alice, bob, rig):
    rig.os_release(DEBIAN_12)
    rig.bins.add("apt-get", apt_rules(SIM_PENDING, Rule(
        match=["-y", "**"], stream=UPGRADE_LOG, line_delay=0.06,
        writes={str(rig.root / "reboot-required"): "*** System restart required ***\n",
                str(rig.root / "reboot-required.pkgs"): "linux-image-6.1.0-28-amd64\n"})))
    rig.bins.clear()
    try:
        command_id, message, rid = await request_for(alice, rig.bot, "!upgrade")
        assert "Debian GNU/Linux 12 (bookworm): apt-get dist-upgrade, a backup of the services first" \
            in message.body
        await bob.command(rig.bot.room_id, f"!approve {rid}", rig.bot.user_id)
        progress = await progress_of(alice, rig.bot, command_id, "!upgrade")
        reply = await result_reply(alice, command_id, rig.bot, "Upgrade of", timeout=30)
    finally:
        (rig.root / "reboot-required").unlink(missing_ok=True)

    update, upgrade = rig.bins.calls("apt-get")
    assert update.argv == ["update"]
    assert upgrade.argv == ["-y", "-o", "Dpkg::Options::=--force-confdef",
                            "-o", "Dpkg::Options::=--force-confold", "dist-upgrade"]
    assert upgrade.env["DEBIAN_FRONTEND"] == "noninteractive" and upgrade.env["LC_ALL"] == "C.UTF-8"

    edits = [e.content["m.new_content"]["body"] for e in alice.edits_of(progress.event_id)]
    streamed = [e for e in edits if "Unpacking " in e or "Setting up " in e]
    assert streamed, edits
    assert any("installing " in e or "configuring " in e for e in streamed)  # the step follows the log
    assert all("\x1b" not in e and "\r" not in e for e in edits)               # ANSI stripped
    assert all(len(e.splitlines()) <= 2 + 12 for e in edits)                 # bounded tail
    await final_edit(alice, progress, rig.bot, "✅ !upgrade")

    body = reply.body
    assert re.match(r"✅ Upgrade of Debian GNU/Linux 12 \(bookworm\) done in \d+s: "
                    r"4 upgraded, 1 newly installed, 0 removed\.", body)
    assert "base-files 12.4+deb12u11 → 12.4+deb12u15" in body
    assert "linux-image-6.1.0-28-amd64 (new) → 6.1.119-1" in body
    assert "🔁 A reboot is needed (linux-image-6.1.0-28-amd64)" in body
    assert re.search(r"Backed up first: files \(snapshot [0-9a-f]{8}\)\.", body)
    assert "backup before the upgrade: starting" in progress.body      # the backup ran first


async def test_failed_backup_stops_the_upgrade_before_anything_changes(alice, bob, rig):
    rig.os_release(DEBIAN_12)
    live = rig.root / "live" / "files"
    live.rename(rig.root / "live" / "moved")
    rig.bins.clear()
    try:
        command_id = await approved(alice, bob, rig.bot, "!upgrade")
        reply = await result_reply(alice, command_id, rig.bot, "backup before the upgrade failed", timeout=30)
    finally:
        (rig.root / "live" / "moved").rename(live)
    assert reply.body.startswith("⚠️ the backup before the upgrade failed, so nothing was upgraded: "
                                 "files:")
    assert "!upgrade --no-backup" in reply.body
    assert not rig.calls("apt-get")


async def test_dpkg_lock_held_says_try_again_later(alice, bob, rig):
    rig.os_release(DEBIAN_12)
    rig.bins.add("apt-get", apt_rules(SIM_NOTHING, Rule(match=["-y", "**"], stderr=DPKG_LOCKED, exit=100)))
    command_id = await approved(alice, bob, rig.bot, "!upgrade --no-backup")
    reply = await result_reply(alice, command_id, rig.bot, "did not start")
    assert reply.body.startswith("⚠️ the upgrade did not start: another package manager is running; "
                                 "try again later (held by unattended-upgr, pid 1234)")
    assert "Nothing was changed" in reply.body


async def test_failure_midway_surfaces_the_error_and_the_log(alice, bob, rig):
    rig.os_release(DEBIAN_12)
    rig.bins.add("apt-get", apt_rules(SIM_NOTHING, Rule(
        match=["-y", "**"], exit=100, stream=UPGRADE_LOG[:18], line_delay=0.02,
        stderr="dpkg: error processing package nginx (--configure):\n"
               "E: Sub-process /usr/bin/dpkg returned an error code (1)\n")))
    command_id = await approved(alice, bob, rig.bot, "!upgrade --no-backup")
    progress = await progress_of(alice, rig.bot, command_id, "!upgrade")
    reply = await result_reply(alice, command_id, rig.bot, "stopped")
    assert reply.body.startswith("⚠️ the upgrade stopped: apt-get dist-upgrade failed (exit code 100): "
                                 "Sub-process /usr/bin/dpkg returned an error code (1)")
    final = await final_edit(alice, progress, rig.bot, "❌ !upgrade")
    shown = final.content["m.new_content"]["body"]
    assert "dpkg: error processing package nginx (--configure):" in shown  # the log's tail is kept


async def test_cancel_is_deferred_once_packages_are_being_installed(alice, bob, rig):
    rig.os_release(DEBIAN_12)
    rig.bins.add("apt-get", apt_rules(SIM_NOTHING, Rule(match=["-y", "**"], stream=UPGRADE_LOG,
                                                        line_delay=0.12)))
    command_id = await approved(alice, bob, rig.bot, "!upgrade --no-backup")
    progress = await progress_of(alice, rig.bot, command_id, "!upgrade")
    job_id = int(re.search(r"job #(\d+)", progress.body).group(1))
    await alice.wait_for(lambda e: e.relates.get("event_id") == progress.event_id
                         and "Unpacking " in e.content.get("m.new_content", {}).get("body", ""), 20)
    answer = await bob.command(rig.bot.room_id, f"!cancel {job_id}", rig.bot.user_id)
    assert answer.body.startswith(f"cancelling job #{job_id}")
    reply = await result_reply(alice, command_id, rig.bot, "Upgrade of", timeout=30)
    assert "The cancel from @bob:localhost came while the system was being changed" in reply.body
    assert any("cannot stop now" in e.content["m.new_content"]["body"]
               for e in alice.edits_of(progress.event_id))


async def test_cancel_before_anything_changed_stops_the_upgrade(alice, bob, rig):
    rig.os_release(DEBIAN_12)
    rig.bins.add("apt-get", [Rule(match=["update"], sleep=20, stdout=APT_UPDATE)])
    command_id = await approved(alice, bob, rig.bot, "!upgrade --no-backup")
    progress = await progress_of(alice, rig.bot, command_id, "!upgrade")
    job_id = int(re.search(r"job #(\d+)", progress.body).group(1))
    await bob.command(rig.bot.room_id, f"!cancel {job_id}", rig.bot.user_id)
    await result_reply(alice, command_id, rig.bot, "was cancelled by @bob:localhost", timeout=15)


async def test_rollback_is_refused_on_debian(alice, bob, rig):
    rig.os_release(DEBIAN_12)
    rig.bins.clear()
    command_id, message, rid = await request_for(alice, rig.bot, "!rollback")
    assert "not available on Debian GNU/Linux 12 (bookworm)" in message.body
    await bob.command(rig.bot.room_id, f"!approve {rid}", rig.bot.user_id)
    reply = await result_reply(alice, command_id, rig.bot, "not available")
    assert "apt replaces packages in place and keeps no previous system" in reply.body
    assert not rig.bins.calls()


# -- NixOS ------------------------------------------------------------------------------------

async def test_nixos_upgrade_reports_generations(alice, bob, rig):
    rig.os_release(NIXOS_24_05)
    rig.bins.add("nix-env", nix_env_rules(41))
    rig.bins.add("nixos-rebuild", [Rule(match=["switch", "--upgrade"], stream=SWITCH_LOG, line_delay=0.15,
                                        writes=then_current(rig.bins, 42))])
    rig.bins.clear()
    command_id = await approved(alice, bob, rig.bot, "!upgrade --no-backup")
    progress = await progress_of(alice, rig.bot, command_id, "!upgrade")
    reply = await result_reply(alice, command_id, rig.bot, "Upgrade of", timeout=30)
    assert re.match(r"✅ Upgrade of NixOS 24\.05 \(Uakari\) done in \d+s: generation 41 → 42\.",
                    reply.body)
    [switch] = rig.bins.calls("nixos-rebuild")
    assert switch.argv == ["switch", "--upgrade"]
    assert switch.env["NIX_PATH"].startswith("nixpkgs=")          # a systemd service has none
    assert switch.env["PATH"].startswith(str(rig.bins.dir))
    assert "/run/current-system/sw/bin" in switch.env["PATH"].split(":")
    edits = "\n".join(e.content["m.new_content"]["body"] for e in alice.edits_of(progress.event_id))
    assert "activating the configuration..." in edits


async def test_nixos_build_failure_leaves_the_system_unchanged(alice, bob, rig):
    rig.os_release(NIXOS_24_05)
    rig.bins.add("nix-env", nix_env_rules(42))
    rig.bins.add("nixos-rebuild", [Rule(match=["switch", "--upgrade"], stderr=BUILD_FAILURE, exit=1)])
    command_id = await approved(alice, bob, rig.bot, "!upgrade --no-backup")
    progress = await progress_of(alice, rig.bot, command_id, "!upgrade")
    reply = await result_reply(alice, command_id, rig.bot, "unchanged")
    assert reply.body.startswith("⚠️ the upgrade failed; the running system is unchanged: builder for "
                                 "'hello-2.12.1' failed with exit code 2")
    final = await final_edit(alice, progress, rig.bot, "❌ !upgrade")
    assert "expected ';' before 'return'" in final.content["m.new_content"]["body"]


async def test_generations_and_rollback(alice, bob, rig):
    rig.os_release(NIXOS_24_05)
    rig.bins.add("nix-env", nix_env_rules(42))
    link = rig.root / "profiles" / "system-42-link"
    link.mkdir(parents=True, exist_ok=True)
    (link / "nixos-version").write_text("24.05.20240612.cc54fb4\n")
    listing = await alice.command(rig.bot.room_id, "!generations", rig.bot.user_id)
    assert re.search(r"^generation 42 \(current\) — built 2024-11-\d\d 10:00 · NixOS 24\.05\.20240612\.cc54fb4$",
                     listing.body, re.M)
    assert re.findall(r"^generation (\d+)(?: \(current\))? — built 2024-", listing.body, re.M) == ["42", "41", "40"]

    rig.bins.add("nixos-rebuild", [Rule(match=["switch", "--rollback"], writes=then_current(rig.bins, 41),
                                        stderr="switching profile from version 42 to 41\n"
                                               "activating the configuration...\n")])
    rig.bins.clear()
    command_id, message, rid = await request_for(alice, rig.bot, "!rollback")
    assert "from generation 42 back to 41" in message.body
    await bob.command(rig.bot.room_id, f"!approve {rid}", rig.bot.user_id)
    reply = await result_reply(alice, command_id, rig.bot, "Rolled back")
    assert re.match(r"↩️ Rolled back NixOS 24\.05 \(Uakari\) in \d+s: generation 42 → 41\.", reply.body)
    assert rig.calls("nixos-rebuild") == [["switch", "--rollback"]]


async def test_generations_on_debian_explains(alice, rig):
    rig.os_release(DEBIAN_12)
    reply = await alice.command(rig.bot.room_id, "!generations", rig.bot.user_id)
    assert "there are no system generations on Debian GNU/Linux 12 (bookworm)" in reply.body


# -- reboot -----------------------------------------------------------------------------------

async def test_refused_reboot_is_reported(alice, bob, rig):
    rig.bins.add("systemctl", [Rule(match=["reboot"], exit=1,
                                    stderr="Failed to reboot system via logind: Access denied\n")])
    command_id = await approved(alice, bob, rig.bot, "!reboot")
    reply = await result_reply(alice, command_id, rig.bot, "the reboot did not happen")
    assert "Access denied" in reply.body and "still running as before" in reply.body


async def test_reboot_posts_a_notice_first_and_says_when_it_is_back(alice, bob, rig):
    rig.os_release(DEBIAN_12)
    rig.bins.add("systemctl", [Rule(match=["reboot"])])
    rig.bins.clear()
    command_id, message, rid = await request_for(alice, rig.bot, "!reboot")
    assert "every service is down for a minute or two" in message.body
    await bob.command(rig.bot.room_id, f"!approve {rid}", rig.bot.user_id)
    notice = await result_reply(alice, command_id, rig.bot, "🔄 Rebooting")
    log = rig.bins.dir / "calls.jsonl"
    for _ in range(200):
        if rig.calls("systemctl"):
            break
        await asyncio.sleep(0.05)
    assert rig.calls("systemctl") == [["reboot"]]
    event = await alice.client.room_get_event(rig.bot.room_id, notice.event_id)
    assert event.event.server_timestamp <= log.stat().st_mtime * 1000  # the notice left first

    rig.boot(uptime=42.0)                       # the machine "rebooted": new boot id, up 42 s
    rig.bot.stop()
    rig.bot.start()
    await wait_answering(alice, rig.bot)
    back = await alice.wait_for(from_bot(rig.bot, "Back after a reboot", reply_to=command_id), 20)
    assert back.body.startswith("✅ Back after a reboot, up 42 s (asked by @alice:localhost).")
    assert "No reboot needed." in back.body


async def test_unplanned_reboot_is_announced_and_a_bot_restart_is_not(alice, rig):
    started = asyncio.get_running_loop().time()
    rig.boot(uptime=31.0, new_boot=False)
    rig.bot.stop()
    rig.bot.start()
    await wait_answering(alice, rig.bot)
    rig.boot(uptime=7.0)
    rig.bot.stop()
    rig.bot.start()
    await wait_answering(alice, rig.bot)
    unplanned = await alice.wait_for(from_bot(rig.bot, "restarted without a !reboot"), 20)
    assert "I am back, up 7 s" in unplanned.body
    assert set(unplanned.content["m.mentions"]["user_ids"]) == {
        "@alice:localhost", "@bob:localhost", "@erin:localhost"}
    announced = [e for e in alice.events if e.sender == rig.bot.user_id and e.received > started
                 and ("restarted" in e.body or "reboot" in e.body)]
    assert announced == [unplanned]             # the first restart (same boot) said nothing


# -- scheduled check, automatic window, reminders ---------------------------------------------

SIM_PENDING_NEWER = SIM_PENDING.replace("12.4+deb12u15", "12.4+deb12u16")
SCHEDULES = """
check_cron = "1-59/2 * * * * *"
auto_upgrade = true
auto_cron = "*/4 * * * * *"
reboot_reminder = "1h"
pre_upgrade_backup = false
"""


async def test_scheduled_check_posts_a_pending_set_once_and_the_window_upgrades(alice, rig):
    """Last in this module: the admin turns the schedules on (config change, restart)."""
    bot, bins = rig.bot, rig.bins
    rig.os_release(DEBIAN_12)
    (rig.root / "reboot-required").write_text("*** System restart required ***\n")
    (rig.root / "reboot-required.pkgs").write_text("libc6\n")
    bins.add("apt-get", apt_rules(SIM_PENDING, Rule(match=["-y", "**"], stream=UPGRADE_LOG[:12])))
    bins.clear()
    bot.config_path.write_text(bot.config_path.read_text().replace("check_enabled = false\n", SCHEDULES))
    bot.stop()
    restarted = asyncio.get_running_loop().time()
    bot.start()

    def posted(needle: str):
        return lambda e: (e.sender == bot.user_id and e.received > restarted and needle in e.body
                          and e.relates.get("rel_type") != "m.replace")

    first = await alice.wait_for(posted("update(s) pending"), 30)
    assert first.reply_to is None and "base-files" in first.body and "12.4+deb12u15" in first.body
    window = await alice.wait_for(posted("🕓 Automatic upgrade"), 20)
    assert "4 upgraded, 1 newly installed" in window.body
    assert "No backup first (pre_upgrade_backup = false)." in window.body
    def checks() -> int:
        return rig.calls("apt-get").count(["-s", "dist-upgrade"])

    checks_then = checks()
    for _ in range(150):
        if checks() >= checks_then + 2:
            break
        await asyncio.sleep(0.1)
    assert checks() >= checks_then + 2, "the scheduled check did not run again"
    assert len([e for e in alice.events if posted("update(s) pending")(e)]) == 1, \
        "the same pending set was posted twice"

    bins.add("apt-get", apt_rules(SIM_PENDING_NEWER, Rule(match=["-y", "**"], stream=UPGRADE_LOG[:12])))
    second = await alice.wait_for(posted("12.4+deb12u16"), 20)
    assert "update(s) pending" in second.body

    reminders = [e for e in alice.events if posted("needs a reboot")(e)]
    assert len(reminders) == 1 and "libc6" in reminders[0].body
    assert len(reminders[0].content["m.mentions"]["user_ids"]) == 3
    assert not [e for e in alice.events if posted("🔐 Request")(e)]          # no approval asked
    upgrades = [c for c in bins.calls("apt-get") if c.argv[0] == "-y"]
    assert upgrades and upgrades[0].env["DEBIAN_FRONTEND"] == "noninteractive"
    bot.stop()                                  # its schedules would go on for the whole session


# -- the machine's real apt (read-only) -------------------------------------------------------

@pytest.mark.skipif(shutil.which("apt-get") is None, reason="no apt-get on this machine")
async def test_real_apt_simulation_renders_every_pending_update():
    """`apt-get -s dist-upgrade` only simulates; the package lists are not refreshed (that writes)."""
    info = read_os_info()
    check = await AptDriver(AptParams(simulate_timeout=120), family="debian").check(refresh=False)
    reply = render_check(info, check)
    assert info.pretty_name in reply.body
    shown = sorted(check.updates, key=lambda u: not u.security)[:SHOWN_PENDING]     # security first
    for update in shown:
        assert update.name in reply.body and (update.new or "") in reply.body
    every = render_check(info, check, show_all=True)
    for update in check.updates:
        assert update.name in every.body and (update.new or "") in every.body
    if not check.pending:
        assert "is up to date" in reply.body
