"""The features this bot runs, in start order (each is one package here; see spbot/feature.py).
Adding a feature: its package under spbot/features/ and one line in FEATURES."""
from __future__ import annotations

from ..feature import Feature


def all_features() -> list[type[Feature]]:
    """Imported on call: the command line and tests that only parse config pay for no feature."""
    from .upgrade.feature import UpgradeFeature
    return [
        UpgradeFeature,
    ]
