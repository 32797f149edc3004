"""The SSH keys feature: root's authorized_keys, managed from chat."""
from .feature import SshFeature, SshSettings

__all__ = ["SshFeature", "SshSettings"]
