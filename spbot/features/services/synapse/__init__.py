"""The family homeserver's own upkeep (Synapse): media store, database size, remote media purge, the disk
alert's purge offer, and the follow-up after a restart."""
from .upkeep import HomeserverUpkeep, PurgeOffer, UpkeepError

__all__ = ["HomeserverUpkeep", "PurgeOffer", "UpkeepError"]
