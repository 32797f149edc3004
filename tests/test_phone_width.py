"""Replies that read on a phone: a real bot is asked for each kind of reply (help, disks on a machine
with 100 filesystems, 126 pending updates, jobs with a long result, audit, requests, errors …), and
every `formatted_body` it sends — plus every bot reply alice's client recorded earlier in this session
(tests/conftest.py) — is rendered in headless Chromium 400 px wide. Nothing may be wider than the
screen. The screenshots stay in the directory the test prints (SPBOT_PHONE_SHOTS chooses it)."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.fakebin import FakeBin, Rule
from tests.phone_width import WIDTH, chromium, read_recorded, render_all
from tests.test_approvals import request_for, result_reply
from tests.test_upgrade import APT_UPDATE

from .conftest import reply_log

if TYPE_CHECKING:
    from .conftest import TestBot

pytestmark = [pytest.mark.matrix,
              pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium (deploy/test installs it)")]

GiB = 1024 ** 3
TIMEOUT = 30
UPDATES = 126
SECURITY = 7


def apt_simulation(count: int, security: int) -> str:
    """`apt-get -s dist-upgrade` output with `count` upgrades, the last `security` from the security suite."""
    lines = ["Reading package lists...", "Building dependency tree...", "Reading state information...",
             "Calculating upgrade...", "The following packages will be upgraded:",
             "  " + " ".join(f"libfamily-package-{i:03d}" for i in range(count)),
             f"{count} upgraded, 0 newly installed, 0 to remove and 0 not upgraded."]
    for i in range(count):
        origin = "Debian-Security:12/stable-security" if i >= count - security else "Debian:12.15/stable"
        lines.append(f"Inst libfamily-package-{i:03d} [2.36-9+deb12u{i}] (2.36-9+deb12u{i + 1} {origin} [amd64])")
    return "\n".join(lines) + "\n"


def many_mounts(path: Path, count: int) -> None:
    """The [disk] usage_source file: `count` filesystems, three of them full or filling up."""
    mounts = []
    for i in range(count):
        percent = {0: 97, 1: 91, 2: 88}.get(i, 20 + i % 50)
        used = 100 * GiB * percent // 100
        mounts.append({"mountpoint": f"/srv/family-share-{i:03d}", "device": f"/dev/mapper/vg0-share{i:03d}",
                       "fstype": "ext4", "total": 100 * GiB, "used": used, "free": 100 * GiB - used})
    path.write_text(json.dumps({"mounts": mounts}))


@pytest.fixture(scope="module")
async def phone_bot(make_bot, tmp_path_factory) -> "TestBot":
    root = tmp_path_factory.mktemp("phone")
    many_mounts(root / "usage.json", 100)
    bins = FakeBin(root)
    bins.add("apt-get", [Rule(match=["update"], stdout=APT_UPDATE),
                         Rule(match=["-s", "dist-upgrade"], stdout=apt_simulation(UPDATES, SECURITY))])
    (root / "os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'
                                     'VERSION_ID="12"\n')
    return await make_bot("phone", env=bins.env(), extra=f"""
[disk]
usage_source = "{root}/usage.json"
sample_interval = "1h"
[upgrade]
os_release = "{root}/os-release"
check_enabled = false
[upgrade.apt]
apt_get = "{bins.dir}/apt-get"
reboot_required_file = "{root}/reboot-required"
reboot_required_pkgs = "{root}/reboot-required.pkgs"
""")


def shots_dir(tmp_path_factory) -> Path:
    chosen = os.environ.get("SPBOT_PHONE_SHOTS")
    return Path(chosen) if chosen else tmp_path_factory.mktemp("phone-width")


async def ask(alice, bot: "TestBot", text: str, needle: str = ""):
    """The bot's answer to `text` (for a job: its result, the reply that contains `needle`)."""
    if not needle:
        return await alice.command(bot.room_id, text, bot.user_id, timeout=TIMEOUT)
    command_id = await alice.send(bot.room_id, text)
    return await result_reply(alice, command_id, bot, needle, timeout=TIMEOUT)


async def test_large_machine_replies_are_phone_sized(alice, phone_bot):
    disk = await ask(alice, phone_bot, "!disk")
    body = disk.body
    assert body.startswith("Disks on ") and "(100 filesystems): 3 need attention" in body.splitlines()[0]
    listed = [line.split(" — ")[0] for line in body.splitlines()[1:4]]
    assert listed == ["/srv/family-share-000", "/srv/family-share-001", "/srv/family-share-002"], body
    assert "97%" in body.splitlines()[1] and "3.0 GiB free of 100.0 GiB" in body.splitlines()[1]
    assert "97 filesystems fine: below their warning level and not filling up (fullest " \
           "/srv/family-share-049 at 69%)." in body
    assert "!disk --all lists every one." in body
    assert len(disk.content["formatted_body"]) < 2000 and len(body.splitlines()) <= 10

    every = await ask(alice, phone_bot, "!disk --all")
    rows = [line for line in every.body.splitlines() if line.startswith("/srv/family-share-")]
    assert len(rows) == 100 and all(re.search(r" — \d+% · [\d.]+ GiB free of 100.0 GiB · ", r) for r in rows)
    assert "<li><b>/srv/family-share-099</b>" in every.content["formatted_body"]     # not shortened

    check = await ask(alice, phone_bot, "!upgrade check", "pending")
    lines = check.body.splitlines()
    assert lines[0] == (f"📦 Debian GNU/Linux 12 (bookworm): {UPDATES} update(s) pending "
                        f"({SECURITY} security).")
    packages = [line for line in lines if line.startswith("libfamily-package-")]
    assert len(packages) == 10 and all("🔒" in p for p in packages[:SECURITY])
    assert packages[0] == f"libfamily-package-{UPDATES - SECURITY:03d} 🔒 — 2.36-9+deb12u{UPDATES - SECURITY} " \
                          f"→ 2.36-9+deb12u{UPDATES - SECURITY + 1}"
    assert f"… and {UPDATES - 10} more: !upgrade check --all lists every one." in check.body
    full = await ask(alice, phone_bot, "!upgrade check --cached --all", "pending")
    assert sum(line.startswith("libfamily-package-") for line in full.body.splitlines()) == UPDATES


async def test_jobs_cut_a_long_result_with_an_ellipsis(alice, phone_bot):
    token = "a-very-long-token-" * 8
    await ask(alice, phone_bot, f"!locked-sleep 0.1 {token}", "locked sleep done")
    jobs = await ask(alice, phone_bot, "!jobs")
    lines = jobs.body.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("#") and "locked-sleep" in line)
    assert re.match(r"#\d+ !locked-sleep — ✅ done · \d+s · @alice:localhost$", lines[head]), jobs.body
    result = lines[head + 1].strip()
    assert result.startswith("`locked sleep done a-very-long-token-") and result.endswith("…`")
    assert len(result) == len("`") + 80 + len("…`")          # 80 characters, then the ellipsis


async def test_help_is_grouped(alice, phone_bot):
    overview = await ask(alice, phone_bot, "!help")
    lines = overview.body.splitlines()
    assert lines[0].startswith("Commands by group: !help <group> lists one")
    assert [line.split(" (!help ")[0] for line in lines[1:]] == [
        "core", "approvals and jobs", "disk and services", "backups", "system", "users and keys",
        "cloud and DNS"]                       # "other" only shows up when a command declares no group
    assert len(overview.body) < 900
    assert "approvals and jobs (!help approvals): approve, cancel, deny, jobs, requests" in lines
    group = await ask(alice, phone_bot, "!help disks")
    assert group.body.splitlines()[0] == "Disk and services commands"
    assert {line.split(" — ")[0] for line in group.body.splitlines()[1:]} == {
        "!cleanup", "!cleanup run", "!disk", "!service", "!service logs", "!service restart",
        "!service start", "!service stop", "!services", "!services detect"}


async def test_no_reply_overflows_a_phone_screen(alice, bob, phone_bot, tmp_path_factory):
    """Last in the module: asks for the remaining kinds, then renders everything seen so far."""
    await request_for(alice, phone_bot, "!danger " + "x" * 120)
    for text in ("!requests", "!audit", "!status", "!ping", "!help backups", "!help upgrade check",
                 "!disk srv", "!devices", "!generations", "!nonsense-command"):
        await ask(alice, phone_bot, text)
    replies = [(f"{i:03d}-{e.body[:40]}", (e.content.get("m.new_content") or e.content)["formatted_body"])
               for i, e in enumerate(alice.events)
               if e.sender == phone_bot.user_id and (e.content.get("m.new_content") or e.content).get("formatted_body")]
    recorded = read_recorded(reply_log(tmp_path_factory))
    unique = list({html: (name, html) for name, html in replies + recorded}.values())
    out = shots_dir(tmp_path_factory)
    rendered = await render_all(unique, out)
    print(f"\n{len(rendered)} replies rendered {WIDTH} px wide; screenshots in {out}")
    too_wide = {r.name: r.overflows[:3] for r in rendered if r.overflows}
    assert not too_wide, f"wider than {WIDTH} px (screenshots in {out}): {too_wide}"
    assert len(replies) >= 15 and all(r.screenshot.stat().st_size > 0 for r in rendered)
