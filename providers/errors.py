"""The one error shape of the providers (outside APIs): what happened and what to do next, both ready
to post in chat. spbot's command executor replies with them as they are (spbot/execute.py), so a
command needs no translation of its own."""
from __future__ import annotations


class ProviderError(Exception):
    """A call to an outside API failed: `what` happened, `todo` says what to do next (may be empty
    when `what` already says it). `str()` is `what`, as before the errors shared this base."""

    todo: str = ""

    def __init__(self, what: str, todo: str | None = None):
        super().__init__(what)
        self.what = what
        if todo is not None:
            self.todo = todo
