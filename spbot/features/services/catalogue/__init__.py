"""The service catalogue: one TOML file per service in this folder (data, not code), read and validated
into Definitions. Adding a service: a new <name>.toml here (see definition.py for its keys); the unit
test tests/unit/test_service_catalogue.py validates every file."""
from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from pydantic import ValidationError

from ..definition import Definition


class CatalogueError(Exception):
    """A definition file that does not validate (a bug in the shipped catalogue)."""


def _files():
    return sorted((f for f in resources.files(__name__).iterdir() if f.name.endswith(".toml")),
                  key=lambda f: f.name)


def read(name: str, text: str) -> Definition:
    """One definition from its file's text; CatalogueError with the file name and the problem."""
    try:
        return Definition.model_validate({"name": name, **tomllib.loads(text)})
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise CatalogueError(f"catalogue/{name}.toml: {exc}") from None


@cache
def catalogue() -> dict[str, Definition]:
    """Every definition shipped with spbot, by name."""
    return {f.name[:-5]: read(f.name[:-5], f.read_text(encoding="utf-8")) for f in _files()}


def definition(name: str) -> Definition:
    """The named definition; KeyError with a did-you-mean sentence when there is none."""
    known = catalogue()
    if name in known:
        return known[name]
    from difflib import get_close_matches   # only when a name is wrong
    close = get_close_matches(name, sorted(known), n=1)
    raise KeyError((f"did you mean {close[0]}? " if close else "")
                   + f"the catalogue has {', '.join(sorted(known))}")
