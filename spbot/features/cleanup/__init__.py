"""The clean-up feature: what each clean-up step would free, and running them."""
from .feature import CleanupFeature
from .settings import CleanupSettings

__all__ = ["CleanupFeature", "CleanupSettings"]
