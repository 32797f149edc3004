"""The fleet: several servers, each with its own bot, in one encrypted room (over Matrix federation when
the servers have their own homeservers). The bots speak to each other through encrypted events of a
custom type that clients do not show: answers to a command for every bot (gathered into one reply by
one of them), heartbeats, and claims that decide which bot reports a silent one."""
from .feature import FleetFeature

__all__ = ["FleetFeature"]
