"""Chat commands: one module per command group. Every module in this package is loaded at start."""
import importlib
import pkgutil


def load_all(extra: list[str] = ()) -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    for module in extra:
        importlib.import_module(module)
