"""The users feature: homeserver accounts and invites, passwords delivered privately."""
from .feature import UsersFeature
from .settings import UsersSettings

__all__ = ["UsersFeature", "UsersSettings"]
