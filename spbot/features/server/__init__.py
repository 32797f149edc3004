"""The cloud server and its volumes ([hetzner]): facts, metrics, reboot, snapshot, resize, volume
growth, behind a provider interface (provider.py) that Hetzner implements today."""
from __future__ import annotations

from .feature import ServerFeature

__all__ = ["ServerFeature"]
