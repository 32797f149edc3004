"""!backup list keeps a local repository's listing while its snapshot files are the same, and asks restic
again once they changed (a real restic and repository; a restic that cannot run shows who was asked)."""
import os
import shutil
import subprocess

import pytest

from spbot.context import UserError
from spbot.features.backup import snapshots
from spbot.system.restic import LocalRepository, Restic

pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed")
PASSWORD = "unit listing password"


def back_up(env: dict, data) -> None:
    subprocess.run(["restic", "backup", "--tag", "service:data", str(data)], env=env, check=True,
                   capture_output=True)


async def test_listing_is_kept_until_the_repository_changes(tmp_path):
    repo, data = tmp_path / "repo", tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("a\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "RESTIC_REPOSITORY": str(repo),
           "RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run(["restic", "init"], env=env, check=True, capture_output=True)
    back_up(env, data)
    working = Restic(LocalRepository(path=repo), PASSWORD, cache_dir=tmp_path / "bot-cache")
    unable = Restic(LocalRepository(path=repo), PASSWORD, binary=str(tmp_path / "no-restic"),
                    cache_dir=tmp_path / "bot-cache")

    first = await snapshots.of_service(None, "data", working)
    assert len(first) == 1
    again = await snapshots.of_service(None, "data", unable)
    assert [s.id for s in again] == [s.id for s in first], "the same repository: answered without restic"

    back_up(env, data)
    with pytest.raises(UserError):
        await snapshots.of_service(None, "data", unable)       # changed: restic is asked (and cannot run)
    assert len(await snapshots.of_service(None, "data", working)) == 2
    assert len(await snapshots.of_service(None, "data", unable)) == 2
