"""`spbot doctor` checks each feature's set-up against the real other side: the cloud providers' and
deSEC's APIs (local servers speaking their API, tests/fakes/), the session's real Synapse for [users],
the machine's own files and tools for [ssh] and upgrades. Output is grouped under a heading per
feature; a feature whose section is absent says nothing; each failure says what to do."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spbot.devstack import PlainSession
from tests.cloud_sides import DigitalOceanSide, HetznerSide
from tests.fakes.desec_api import FakeDesec

ROOT = Path(__file__).resolve().parent.parent
NOWHERE = "http://127.0.0.1:9"          # no homeserver: the feature checks run all the same


def doctor(tmp_path: Path, extra: str, homeserver: str = NOWHERE, user_id: str = "@spbot:example.org",
           upgrade: str = "") -> tuple[int, dict[str, list[str]]]:
    """Run `spbot doctor --config`; its exit code and its lines under each heading."""
    config = tmp_path / "spbot.toml"
    config.write_text(f'homeserver = "{homeserver}"\nuser_id = "{user_id}"\n'
                      f'password = {{ file = "{tmp_path}/no-password" }}\nadmins = ["@alice:example.org"]\n'
                      f'rooms = ["!abc:example.org"]\nstate_dir = "{tmp_path}/state"\n'
                      f'[upgrade]\ncheck_enabled = false\n{upgrade}\n{extra}')
    result = subprocess.run([sys.executable, "-m", "spbot", "doctor", "--config", str(config)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    groups: dict[str, list[str]] = {}
    heading = None
    for line in result.stdout.splitlines():
        if line.startswith("-- "):
            heading = line[3:]
            assert heading not in groups, f"{heading} printed twice:\n{result.stdout}"
            groups[heading] = []
        else:
            assert heading is not None, result.stdout
            groups[heading].append(line)
    return result.returncode, groups


def secret(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def test_an_absent_section_says_nothing(tmp_path):
    _, groups = doctor(tmp_path, "")
    assert {"cloud server", "dns", "users", "ssh", "backup"}.isdisjoint(groups), groups
    assert groups["matrix"][0].startswith("[ok  ] configuration is valid")
    assert any(line.startswith("[FAIL] homeserver") for line in groups["matrix"])


@pytest.mark.parametrize("side_kind", [HetznerSide, DigitalOceanSide], ids=["hetzner", "digitalocean"])
def test_the_cloud_token_and_server_are_checked(tmp_path, side_kind):
    side = side_kind()
    side.start()
    try:
        by_id = tmp_path / "by-id"
        by_id.mkdir()
        good = side.section(secret(tmp_path, "token", side.token), by_id)
        code, groups = doctor(tmp_path, good)
        facts = "cx22, running, fsn1" if side.name == "hetzner" else "s-2vcpu-4gb, active, fra1"
        assert groups["cloud server"] == [
            f"[ok  ] {side.label} accepts the API token; server family-server found ({facts})"], groups

        _, groups = doctor(tmp_path, side.section(secret(tmp_path, "token", "a-revoked-token"), by_id))
        [line] = groups["cloud server"]
        assert line.startswith(f"[FAIL] {side.label}: ") and "rejected the API token" in line, line
        assert "a-revoked-token" not in line

        code, groups = doctor(tmp_path, good.replace(str(tmp_path / "token"), str(tmp_path / "gone")))
        [line] = groups["cloud server"]
        assert line.startswith(f"[FAIL] I cannot read the {side.label} API token") and "gone" in line, line
        assert code == 1
    finally:
        side.fake.stop()


def test_two_providers_without_a_choice_are_a_failure_that_says_what_to_do(tmp_path):
    token = secret(tmp_path, "token", "x")
    _, groups = doctor(tmp_path, f'[hetzner]\ntoken = {{ file = "{token}" }}\nserver = "a"\n'
                                 f'[digitalocean]\ntoken = {{ file = "{token}" }}\n')
    assert groups["cloud server"] == [
        "[FAIL] Both [hetzner] and [digitalocean] are set up, and [cloud] does not say which one manages "
        'this server: add [cloud] with provider = "hetzner" or "digitalocean"']


def test_the_dns_token_and_zone_are_checked(tmp_path):
    with FakeDesec(token="desec-secret-token") as fake:
        fake.add_domain("example.org")
        fake.add_rrset("example.org", "", "A", ["203.0.113.10"])
        section = (f'[dns]\nprovider = "desec"\ndomain = "example.org"\nipv4 = "203.0.113.10"\n'
                   f'subdomains = []\nmail = false\nbase_url = "{fake.url}"\nmax_retries = 0\n'
                   f'token = {{ file = "{secret(tmp_path, "dns", "desec-secret-token")}" }}\n')
        _, groups = doctor(tmp_path, section)
        assert groups["dns"] == ["[ok  ] deSEC zone example.org readable with the token",
                                 "[ok  ] all 1 records as [dns] says"], groups

        _, groups = doctor(tmp_path, section.replace("subdomains = []", 'subdomains = ["cloud"]'))
        assert groups["dns"][1] == "[warn] records: cloud A missing: see !dns check, then !dns sync"

        secret(tmp_path, "dns", "wrong-token")
        code, groups = doctor(tmp_path, section)
        [line] = groups["dns"]
        assert line.startswith("[FAIL] deSEC zone example.org: ") and "wrong-token" not in line, line
        assert code == 1


def test_the_authorized_keys_file_must_be_writable(tmp_path):
    keys = tmp_path / "root" / ".ssh" / "authorized_keys"
    keys.parent.mkdir(parents=True)
    keys.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake alice\n")
    _, groups = doctor(tmp_path, f'[ssh]\nauthorized_keys = "{keys}"\n')
    assert groups["ssh"] == [f"[ok  ] {keys} writable (1 lines)"]

    (tmp_path / "not-a-directory").write_text("")
    blocked = tmp_path / "not-a-directory" / ".ssh" / "authorized_keys"
    code, groups = doctor(tmp_path, f'[ssh]\nauthorized_keys = "{blocked}"\n')
    [line] = groups["ssh"]
    assert line.startswith(f"[FAIL] {blocked} cannot be changed by this user") and "ReadWritePaths" in line
    assert code == 1


@pytest.mark.parametrize("os_release, expected", [
    ('ID=debian\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
     "[ok  ] Debian GNU/Linux 12 (bookworm): upgrades with /usr/bin/apt-get (daily check off)"),
    ('ID=fedora\nPRETTY_NAME="Fedora Linux 40"\n',
     "[warn] Fedora Linux 40: !upgrade supports Debian, Ubuntu and NixOS only: upgrade this server by hand"),
    (None, "[FAIL] I cannot tell which operating system this is: "),
], ids=["debian", "fedora", "missing"])
def test_the_operating_system_is_detected_for_upgrades(tmp_path, os_release, expected):
    path = tmp_path / "os-release"
    if os_release is not None:
        path.write_text(os_release)
    code, groups = doctor(tmp_path, '[upgrade.apt]\nenv = { PATH = "/usr/bin:/bin" }\n',
                          upgrade=f'os_release = "{path}"')
    [line] = groups["upgrade"]
    assert line.startswith(expected), line
    if os_release is None:
        assert "Set [upgrade] os_release" in line and code == 1


def test_nixos_is_told_when_nixos_rebuild_is_missing(tmp_path):
    path = tmp_path / "os-release"
    path.write_text('ID=nixos\nPRETTY_NAME="NixOS 24.05 (Uakari)"\n')
    _, groups = doctor(tmp_path, f'[upgrade.nixos]\nenv = {{ PATH = "{tmp_path}" }}\n',
                       upgrade=f'os_release = "{path}"')
    assert groups["upgrade"] == ["[FAIL] NixOS 24.05 (Uakari): nixos-rebuild not found: install it, or give "
                                 "its full path in [upgrade.nixos]"]


def test_the_synapse_admin_api_and_invites_are_checked(tmp_path, synapse):
    admin = synapse.register("doctor_admin", "doctor admin password", admin=True)
    plain = synapse.register("doctor_plain", "doctor plain password", admin=False)
    tokens = {who: PlainSession.login(synapse.url, who, password).http.headers["Authorization"].split()[1]
              for who, password in ((admin, "doctor admin password"), (plain, "doctor plain password"))}
    bot = f"@spbot:{synapse.server_name}"

    token = secret(tmp_path, "admin-token", tokens[admin])
    code, groups = doctor(tmp_path, f'[users]\nadmin_token = {{ file = "{token}" }}\n', synapse.url, bot)
    assert groups["users"] == [
        f"[ok  ] admin API at {synapse.url}: {admin} is a homeserver admin ([users] admin_token)",
        "[ok  ] registration needs an invite token: !user invite works"], groups

    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "credentials.json").write_text(
        '{"access_token": "%s", "device_id": "X", "user_id": "%s"}' % (tokens[plain], plain))
    code, groups = doctor(tmp_path, "[users]\n", synapse.url, bot)
    assert groups["users"][0] == (
        f"[FAIL] admin API at {synapse.url}: the account of the bot's own token is not a homeserver admin: "
        f"make {bot} a homeserver admin (in Synapse's database: UPDATE users SET admin = 1 WHERE name = "
        f"'{bot}'), or set [users] admin_token to a homeserver admin's token"), groups
    assert code == 1
