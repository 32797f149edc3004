"""The simulated cloud's volume as this machine would see it, for `!volume list` and `!volume grow`.

With `spbot dev up --simulate-cloud` (and the sandbox on), Hetzner volume 100 "data" of the fake API
(tests/fakes/hetzner_api.py) is "attached" here: a device file under sandbox/dev, its udev by-id link
(`scsi-0HC_Volume_100`, as Hetzner names it) in a sandbox by-id directory the [hetzner] section
points at, and an ext4 mount at /mnt/data listed in `mounts.json`. The findmnt stand-in lists the
real mounts plus that one; the resize2fs stand-in grows the sandboxed filesystem to the volume's size
as the fake API reports it (the kernel's view of a grown disk), answering in resize2fs's words.
Nothing on this machine is mounted, formatted or resized.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from .standins import SANDBOX_LINE, Sandbox, real_tool

MOUNT = "/mnt/data"
VOLUME_ID = 100            # seeded by the fake Hetzner API: "data", 50 GB, attached to family-server
FSTYPE = "ext4"
BLOCK = 4096
OVERHEAD = 0.02            # what ext4's metadata takes: df shows a little less than the disk
USED_BYTES = 12 << 30


class VolumeBox:
    """The sandboxed volume's files under state/sandbox."""

    def __init__(self, state: Path):
        self.state = Path(state)
        self.root = self.state / "sandbox"
        self.device = self.root / "dev" / "sdb"
        self.by_id_dir = self.root / "dev" / "disk" / "by-id"
        self.mounts_file = self.root / "mounts.json"

    def attach(self, on: bool = True) -> None:
        self.install() if on else self.mounts_file.unlink(missing_ok=True)

    def install(self) -> None:
        """Attach the volume: device, by-id link, and its filesystem sized as the cloud says."""
        self.by_id_dir.mkdir(parents=True, exist_ok=True)
        self.device.touch()
        link = self.by_id_dir / f"scsi-0HC_Volume_{VOLUME_ID}"
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(self.device, self.by_id_dir))
        gb = volume_size_gb(self.state, VOLUME_ID) or 50
        self.save({MOUNT: {"source": str(self.device), "fstype": FSTYPE, "blocks": gb * (1 << 30) // BLOCK,
                           "used": USED_BYTES}})

    def mounts(self) -> dict[str, dict]:
        try:
            return json.loads(self.mounts_file.read_text())
        except (OSError, ValueError):
            return {}

    def save(self, mounts: dict[str, dict]) -> None:
        tmp = self.mounts_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(mounts, indent=1))
        tmp.replace(self.mounts_file)


def volume_size_gb(state: Path, volume_id: int) -> int | None:
    """The volume's size as the simulated cloud's API reports it; None when it does not answer."""
    try:
        info = json.loads((Path(state) / "cloud.json").read_text())
        token = Path(info["hetzner_token"]).read_text().strip()
        request = urllib.request.Request(f"{info['hetzner_url']}/volumes/{volume_id}",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(json.load(answer)["volume"]["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _entry(target: str, mount: dict, columns: list[str]) -> dict:
    size = int(mount["blocks"] * BLOCK * (1 - OVERHEAD))
    values = {"target": target, "source": mount["source"], "fstype": mount["fstype"], "size": size,
              "used": mount["used"], "avail": size - mount["used"]}
    return {c: values.get(c) for c in columns}


def findmnt(argv: list[str], base: str) -> int:
    """The real findmnt's list, plus the sandboxed volume's mount (JSON list output only)."""
    real = real_tool("findmnt", base)
    if "--json" not in argv:
        if real is None:
            print("findmnt (dev sandbox): only --json output is simulated", file=sys.stderr)
            return 1
        os.execv(real, [real, *argv])
    sandboxed = VolumeBox(Sandbox.of_bin_dir(base).state).mounts()
    listing: list[dict] = []
    if real:
        done = subprocess.run([real, *argv], capture_output=True, text=True, timeout=30)
        try:
            listing = json.loads(done.stdout)["filesystems"] if done.returncode == 0 else []
        except (ValueError, KeyError):
            listing = []
    output = argv[argv.index("--output") + 1] if "--output" in argv[:-1] else "TARGET,SOURCE,FSTYPE"
    columns = [c.lower() for c in output.split(",")]
    listing = [e for e in listing if e.get("target") not in sandboxed]
    listing += [_entry(target, mount, columns) for target, mount in sandboxed.items()]
    print(json.dumps({"filesystems": listing}, indent=3))
    return 0


def resize2fs(argv: list[str], base: str) -> int:
    """Grow the sandboxed ext4 filesystem on DEVICE to fill its volume, as resize2fs answers."""
    state = Sandbox.of_bin_dir(base).state
    box = VolumeBox(state)
    device = next((a for a in reversed(argv) if not a.startswith("-")), "")
    print("resize2fs 1.47.0 (5-Feb-2023)")
    mounts = box.mounts()
    target = next((t for t, m in mounts.items()
                   if os.path.realpath(m["source"]) == os.path.realpath(device or "?")), None)
    if target is None:
        print(f"resize2fs: No such file or directory while trying to open {device}\n"
              "Couldn't find valid filesystem superblock.", file=sys.stderr)
        return 1
    print(SANDBOX_LINE)
    mount = mounts[target]
    gb = volume_size_gb(state, VOLUME_ID)
    blocks = gb * (1 << 30) // BLOCK if gb else mount["blocks"]
    if blocks <= mount["blocks"]:
        print(f"The filesystem is already {mount['blocks']} (4k) blocks long.  Nothing to do!\n")
        return 0
    print(f"Filesystem at {device} is mounted on {target}; on-line resizing required")
    print(f"old_desc_blocks = {-(-mount['blocks'] // 32768)}, new_desc_blocks = {-(-blocks // 32768)}")
    mounts[target] = {**mount, "blocks": blocks}
    box.save(mounts)
    print(f"The filesystem on {device} is now {blocks} (4k) blocks long.\n")
    return 0
