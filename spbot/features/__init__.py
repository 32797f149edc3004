"""The features this bot runs, in start order (each is one package here; see spbot/feature.py).
Adding a feature: its package under spbot/features/ and one line in all_features(). The order is also
the order of their lines in !status."""
from __future__ import annotations

from ..feature import Feature


def all_features() -> list[type[Feature]]:
    """Imported on call: the command line and tests that only parse config pay for no feature."""
    from .backup import BackupFeature
    from .cleanup import CleanupFeature
    from .disk import DiskFeature
    from .dns import DnsFeature
    from .fleet import FleetFeature
    from .heartbeat import HeartbeatFeature
    from .outofband import OutOfBandFeature
    from .server import ServerFeature
    from .services import ServicesFeature
    from .ssh import SshFeature
    from .upgrade.feature import UpgradeFeature
    from .users import UsersFeature
    return [
        BackupFeature,
        DiskFeature,
        ServicesFeature,
        CleanupFeature,
        SshFeature,
        UsersFeature,
        UpgradeFeature,
        ServerFeature,
        DnsFeature,
        OutOfBandFeature,
        HeartbeatFeature,
        FleetFeature,
    ]
