"""How an approval request shows the requester's words: quoted, on one line, with invisible and bidi
characters made visible, so a crafted argument cannot draw a line that passes for the bot's own."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .render import Quoted, escape, quote_user_text, visible_text


class Line:
    """One line of a request message mixing the bot's words (str) and quoted user text (Quoted)."""

    def __init__(self, parts: list[str | Quoted]):
        self.parts = parts

    def __str__(self) -> str:
        return "".join(str(p) for p in self.parts)

    def html(self) -> str:
        return "".join(p.html if isinstance(p, Quoted) else esc(p) for p in self.parts)


class Preview:
    """A command's preview (its own words, which may repeat arguments): an argument that would not show
    as it is (a newline, a bidi override…) is quoted wherever it appears, and what remains of the preview
    has its invisible characters shown, so an argument cannot draw a line of its own."""

    def __init__(self, text: str, args: dict[str, Any]):
        self.text = text
        self.hostile = sorted({v for v in _arg_texts(args) if quote_user_text(v).plain != f"`{v}`"},
                              key=len, reverse=True)

    def lines(self) -> list[Line]:
        if not self.text:
            return []
        lines, current = [], []
        for piece, is_user in self._pieces():
            if is_user:
                current.append(quote_user_text(piece))
                continue
            first, *rest = piece.split("\n")
            current.append(visible_text(first, keep="`"))
            for line in rest:
                lines.append(Line(current))
                current = [visible_text(line, keep="`")]
        lines.append(Line(current))
        return lines

    def _pieces(self) -> list[tuple[str, bool]]:
        pieces, text = [], self.text
        while text:
            found = [(text.find(v), v) for v in self.hostile if v in text]
            if not found:
                pieces.append((text, False))
                break
            at, value = min(found, key=lambda f: (f[0], -len(f[1])))
            if at:
                pieces.append((text[:at], False))
            pieces.append((value, True))
            text = text[at + len(value):]
        return pieces


def _arg_texts(args: dict[str, Any]) -> list[str]:
    texts = []
    for value in args.values():
        if isinstance(value, (list, tuple)):
            items = [str(v) for v in value if isinstance(v, (str, Path))]
            texts += items + ([" ".join(items)] if len(items) > 1 else [])
        elif isinstance(value, (str, Path)):
            texts.append(str(value))
    return [t for t in texts if t]


def esc(text: str) -> str:
    return escape(text)
