"""A dead man's switch: pings a healthchecks.io-compatible URL on a schedule and around each backup, so a
service outside the machine notices when the whole machine (and the bot with it) is gone."""
from .feature import HeartbeatFeature, HeartbeatSettings

__all__ = ["HeartbeatFeature", "HeartbeatSettings"]
