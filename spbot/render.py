"""What the bot says: a plain `body` and an HTML `formatted_body`, built together so they never disagree."""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Sequence


def escape(text: str, quote: bool = True) -> str:
    """HTML-escape like the standard library's html.escape, without importing html (its entity table
    costs half a MiB in a process that never unescapes)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;").replace("'", "&#x27;") if quote else text


@dataclass
class Reply:
    """`ring`: the message needs a person (an alert, an approval request, an identity warning): sent as
    `m.text` so that the default push rules notify and highlight the admins in `mentions`. Everything
    else is an `m.notice`, which the rule `.m.rule.suppress_notices` keeps quiet whatever it mentions."""
    body: str
    html: str
    mentions: list[str] = field(default_factory=list)
    ring: bool = False

    @classmethod
    def text(cls, body: str, mentions: Sequence[str] = ()) -> "Reply":
        return cls(body, escape(body).replace("\n", "<br>"), list(mentions))

    def to(self, user_ids: Sequence[str]) -> "Reply":
        """This message addressed to people who must see it: their ids first (pills in HTML, the
        fallback for clients without intentional mentions), listed in m.mentions, and it rings."""
        if not user_ids:
            return self
        return Reply(" ".join(user_ids) + ": " + self.body, " ".join(pill(u) for u in user_ids) + ": " + self.html,
                     list(user_ids), ring=True)

    @classmethod
    def error(cls, what: str, todo: str = "") -> "Reply":
        """A failure: what went wrong, and what to do next."""
        body = f"⚠️ {what}" + (f"\n{todo}" if todo else "")
        html = f"⚠️ <b>{escape(what)}</b>" + (f"<br>{escape(todo)}" if todo else "")
        return cls(body, html)

    def __add__(self, other: "Reply") -> "Reply":
        return Reply(f"{self.body}\n{other.body}", f"{self.html}<br>{other.html}",
                     self.mentions + [m for m in other.mentions if m not in self.mentions],
                     self.ring or other.ring)

    @property
    def msgtype(self) -> str:
        """m.text only when it rings for somebody: an m.text without mentions would notify the whole
        room (`.m.rule.message`), an m.notice notifies nobody."""
        return "m.text" if self.ring and self.mentions else "m.notice"

    def content(self, in_reply_to: str | None = None) -> dict:
        """The event content; `in_reply_to`: the event id it answers (a Matrix reply)."""
        content = {"msgtype": self.msgtype, "body": self.body, "format": "org.matrix.custom.html",
                   "formatted_body": self.html}
        content["m.mentions"] = {"user_ids": list(self.mentions)} if self.mentions else {}
        if in_reply_to is not None:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": in_reply_to}}
        return content


# Shown as escapes: they could break a line, reorder what follows (bidi overrides and isolates, marks),
# hide text, or make a quote look closed early (the backtick).
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "`": "\\u0060"}
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs"}
USER_TEXT_LIMIT = 300


@dataclass(frozen=True)
class Quoted:
    """Someone else's words, shown so they cannot pass for the bot's own: one line, quoted."""
    plain: str
    html: str

    def __str__(self) -> str:
        return self.plain


def _visible(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        code = ord(char)
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return char


def visible_text(text: str, keep: str = "") -> str:
    """`text` with every character that could break a line, reorder or hide text shown as an escape
    (except those in `keep`): for the bot's own words that may carry pieces of user text."""
    return "".join(c if c in keep else _visible(c) for c in text)


def quote_user_text(text: str, limit: int = USER_TEXT_LIMIT) -> Quoted:
    """User text (a command, its arguments, a reason) as `…` in plain text and <code>…</code> in HTML:
    on one line, control, line-separator, bidi and other invisible format characters (C0/C1, U+2028/9,
    U+202A–E, U+2066–9, U+200E/F, U+061C, …) shown as escapes like \\u202e, at most `limit` characters
    (cut with "…")."""
    shown, used = [], 0
    for char in text:
        piece = _visible(char)
        if used + len(piece) > limit:
            shown.append("…")
            break
        shown.append(piece)
        used += len(piece)
    inner = "".join(shown)
    return Quoted(f"`{inner}`", f"<code>{escape(inner)}</code>")


def pill(user_id: str) -> str:
    """An HTML mention link that clients show as a pill."""
    return f'<a href="https://matrix.to/#/{escape(user_id)}">{escape(user_id)}</a>'


def mention(user_ids: Sequence[str], text: str) -> Reply:
    """A message that needs these people: pills in HTML, ids in plain text, m.mentions, and it rings
    (see Reply.to)."""
    return Reply.text(text).to(user_ids)


MAX_COLUMNS = 4          # what fits a phone held upright (400 px) with short cells


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters; a cut always ends in "…"."""
    return text if len(text) <= limit else text[:max(limit - 1, 0)].rstrip() + "…"


def _html(cell: object) -> str:
    return cell.html if isinstance(cell, Quoted) else escape(str(cell))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str = "") -> Reply:
    """At most MAX_COLUMNS narrow columns: an HTML table in `formatted_body`; in `body` one row per line,
    its cells joined with " · " (a proportional font cannot align columns). Quoted cells are shown
    quoted in both."""
    if len(headers) > MAX_COLUMNS:
        raise ValueError(f"a table of {len(headers)} columns does not fit a phone: use items()")
    plain = [title] if title else []
    plain += [" · ".join(str(c) for c in row if str(c)) for row in rows]
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_html(c)}</td>" for c in row) + "</tr>" for row in rows)
    html = (f"<b>{escape(title)}</b><br>" if title else "") + \
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return Reply("\n".join(plain), html)


@dataclass(frozen=True)
class Item:
    """One entry of a list: a bold head, short parts after it, an optional second line."""
    head: str | Quoted
    parts: Sequence[str | Quoted] = ()
    note: str | Quoted = ""


def items(title: str, entries: Sequence[Item], more: str = "") -> Reply:
    """A list of short lines per item, for what has more to say than a narrow table holds: in `body`
    one item per line ("head — part · part", its note indented below), in HTML a bulleted list.
    `more` ends it (e.g. "… and 12 more: !disk --all")."""
    plain = [title] if title else []
    html_items = []
    for entry in entries:
        parts = [str(p) for p in entry.parts if str(p)]
        plain.append(str(entry.head) + (" — " + " · ".join(parts) if parts else ""))
        html = f"<b>{_html(entry.head)}</b>" + (
            " — " + " · ".join(_html(p) for p in entry.parts if str(p)) if parts else "")
        if str(entry.note):
            plain.append(f"   {entry.note}")
            html += f"<br>{_html(entry.note)}"
        html_items.append(f"<li>{html}</li>")
    if more:
        plain.append(more)
    html = (f"<b>{escape(title)}</b>" if title else "") + f"<ul>{''.join(html_items)}</ul>" + \
        (escape(more) if more else "")
    return Reply("\n".join(plain), html)


def bar(fraction: float, width: int = 10) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24}h"
