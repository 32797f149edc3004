"""The disk feature: usage of every real filesystem, its history and trend, and the alerts over it."""
from .feature import DiskFeature
from .settings import DiskSettings

__all__ = ["DiskFeature", "DiskSettings"]
