"""Chat commands: one module per command group. Every module in this package is loaded at start, and
with them the feature list (spbot/features/), so that every config section is known."""
import importlib
import pkgutil


def load_all(extra: list[str] = ()) -> None:
    from .. import alerts_settings  # noqa: F401  (the core's own [alerts] section)
    from ..features import all_features
    all_features()
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    for module in extra:
        importlib.import_module(module)
