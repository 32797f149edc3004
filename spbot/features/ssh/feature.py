"""The SSH keys feature: [ssh] settings and root's authorized_keys file they point at (the file work,
with the real ssh-keygen, is the machine helper spbot/system/sshkeys.py).

    [ssh]
    authorized_keys = "/root/.ssh/authorized_keys"
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydantic import ConfigDict, Field

from spbot.config import Duration, config_section
from spbot.feature import Check, Feature
from spbot.system.sshkeys import AuthorizedKeys, SshKeysParams
from spbot.model import Model


@config_section("ssh")
class SshSettings(Model):
    """[ssh]: the authorized_keys file !ssh lists, adds to and removes from, and how keys are checked."""
    model_config = ConfigDict(extra="forbid")
    authorized_keys: Path = Field(
        Path("/root/.ssh/authorized_keys"),
        description="The authorized_keys file !ssh manages (root's).")
    ssh_keygen: str = Field(
        "ssh-keygen",
        description="The ssh-keygen program that checks every key before it is added.")
    min_rsa_bits: int = Field(3072, ge=3072, description="The smallest RSA key accepted.")
    timeout: Duration = Field(15.0, description="How long one ssh-keygen check may take.")


class SshFeature(Feature):
    name = "ssh"
    settings_model = SshSettings
    settings: SshSettings

    @classmethod
    async def doctor(cls, config) -> list[Check]:
        """!ssh add and remove replace the file through a temporary file next to it: its directory must
        be writable (or creatable), and ssh-keygen present."""
        if cls.name not in (config.model_extra or {}):
            return []
        settings: SshSettings = config.settings(cls.name)
        path = settings.authorized_keys
        where = path.parent if path.parent.is_dir() else path.parent.parent
        checks = []
        if not os.access(where, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.R_OK)):
            checks.append(Check("fail", f"{path} cannot be changed by this user ({where} is not writable)",
                                "run the bot as root, or set [ssh] authorized_keys to a file it may write; under "
                                "systemd its directory must be in ReadWritePaths"))
        else:
            state = f"{len(path.read_text().splitlines())} lines" if path.exists() else "not there yet"
            checks.append(Check("ok", f"{path} writable ({state})"))
        if shutil.which(settings.ssh_keygen) is None:
            checks.append(Check("fail", f"{settings.ssh_keygen} not found: keys cannot be checked before they are "
                                        "added", "install openssh-client"))
        return checks

    def authorized_keys(self) -> AuthorizedKeys:
        chosen = self.settings
        return AuthorizedKeys(SshKeysParams(path=chosen.authorized_keys, ssh_keygen=chosen.ssh_keygen,
                                            min_rsa_bits=chosen.min_rsa_bits, timeout=chosen.timeout))
