"""Where `spbot` and `python -m spbot` start. Loading the bot makes some 150,000 objects that live as long
as it does (modules, classes, functions, validators); the cyclic garbage collector would scan them again
and again while they are being made, about a tenth of the launch. It is paused until the bot has loaded,
then those objects are frozen (later collections leave them alone) and it runs as usual."""
from __future__ import annotations

import gc


def main() -> int:
    gc.disable()
    from .cli import main as cli_main
    return cli_main()


def loaded() -> None:
    """Everything the command runs on is imported: the collector runs again, without what is loaded.
    The little garbage the loading made (~3,000 objects) stays: a full collection now would cost the
    launch ~40 ms."""
    gc.freeze()
    gc.enable()
