"""Hetzner Cloud as the server feature's provider: the adapter in providers/hetzner/ plus the
udev lookup of its volumes (`scsi-0HC_Volume_<id>`)."""
from __future__ import annotations

import os
from pathlib import Path

from spbot.providers import hetzner

from .settings import HetznerConfig


class HetznerServer(hetzner.HetznerCloud):
    """A ServerProvider (see provider.py) for the server named in [hetzner]."""

    def volume_id_for_device(self, device: str | os.PathLike[str],
                             by_id_dir: Path = Path("/dev/disk/by-id")) -> int | None:
        return hetzner.volume_id_for_device(device, by_id_dir)


def connect(settings: HetznerConfig, token: str) -> HetznerServer:
    return HetznerServer(settings.provider_settings(token))
