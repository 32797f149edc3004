"""The homeserver upkeep's pure parts: the catalogue's media store (and the backup excludes it implies), the
media store measurement on a real directory tree, the age a purge takes, the disk alert's offer text."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from spbot.commands.matrix import Days
from spbot.features.services.enabled import ServiceConfig, resolve
from spbot.features.services.synapse import PurgeOffer
from spbot.features.services.synapse.media_store import measure, size_lines


def test_the_catalogue_names_the_media_store_and_backups_skip_its_cache(tmp_path):
    debian = resolve("synapse", ServiceConfig(distro="debian"))
    assert debian.media_store == Path("/var/lib/matrix-synapse/media")
    assert "/var/lib/matrix-synapse/media/remote_content" in debian.excludes
    nixos = resolve("synapse", ServiceConfig(distro="nixos"))
    assert nixos.media_store == Path("/var/lib/matrix-synapse/media_store")
    assert "/var/lib/matrix-synapse/media_store/remote_thumbnail" in nixos.excludes
    docker = resolve("synapse", ServiceConfig(containers=["synapse"], media_store=Path("/data/media_store")))
    assert docker.media_store == Path("/data/media_store") and "/data/media_store/remote_content" in docker.excludes
    assert resolve("nextcloud", ServiceConfig(distro="debian")).media_store is None


async def test_measure_splits_uploads_from_the_cache(tmp_path):
    (tmp_path / "local_content/ab/cd").mkdir(parents=True)
    (tmp_path / "local_content/ab/cd/photo").write_bytes(b"x" * 100_000)
    (tmp_path / "remote_content/other.org/ef").mkdir(parents=True)
    (tmp_path / "remote_content/other.org/ef/video").write_bytes(b"y" * 300_000)
    size = await measure(tmp_path)
    assert 100_000 <= size.local < 130_000 and 300_000 <= size.remote < 330_000 and not size.partial
    assert re.fullmatch(r"media cached from other servers: 3\d\d\.\d KiB", size_lines(size, None)[1])
    missing = await measure(tmp_path / "nope")
    assert not missing.readable and size_lines(missing, None)[0].startswith("media store: cannot measure")


def test_purge_age():
    assert Days.parse_arg("30d") == 30 and Days.parse_arg("0") == 0
    for bad in ("3w", "-1d", "99999d", ""):
        with pytest.raises(ValueError):
            Days.parse_arg(bad)


def test_offer_text():
    offer = PurgeOffer("/var", 3 << 30)
    assert offer.command == "!matrix purge-remote-media --older-than 30d"
    assert "takes 3.0 GiB here" in offer.alert_line
