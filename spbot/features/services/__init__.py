"""The services feature: systemd units on demand (!services, !service restart) and the health checks
that speak first (failed units, TLS certificates)."""
from .feature import ServicesFeature
from .settings import HealthSettings, ServicesSettings, UnitName

__all__ = ["HealthSettings", "ServicesFeature", "ServicesSettings", "UnitName"]
