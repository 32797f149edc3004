"""The cloud server and its volumes ([cloud] provider: [hetzner] or [digitalocean]): facts,
metrics, reboot, snapshot, resize, volume growth, behind one provider interface (provider.py)
that Hetzner (hetzner.py) and DigitalOcean (digitalocean.py) implement."""
from __future__ import annotations

from .feature import ServerFeature

__all__ = ["ServerFeature"]
