"""The SSH keys feature: [ssh] settings and root's authorized_keys file they point at (the file work,
with the real ssh-keygen, is the machine helper spbot/system/sshkeys.py).

    [ssh]
    authorized_keys = "/root/.ssh/authorized_keys"
"""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from spbot.config import Duration, config_section
from spbot.feature import Feature
from spbot.system.sshkeys import AuthorizedKeys, SshKeysParams


@config_section("ssh")
class SshSettings(BaseModel):
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

    def authorized_keys(self) -> AuthorizedKeys:
        chosen = self.settings
        return AuthorizedKeys(SshKeysParams(path=chosen.authorized_keys, ssh_keygen=chosen.ssh_keygen,
                                            min_rsa_bits=chosen.min_rsa_bits, timeout=chosen.timeout))
