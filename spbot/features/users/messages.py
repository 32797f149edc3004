"""What the users feature says: the private message that carries a new password, the note on where it
went, and times as the family reads them."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from spbot.render import Reply, escape, human_duration

ELEMENT = "https://element.io/download"


def when(moment: datetime | None, timezone: str, never: str = "never") -> str:
    if moment is None:
        return never
    return f"{moment.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M}"


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    return f"{human_duration(max((now - moment).total_seconds(), 0))} ago"


def password_message(url: str, user_id: str, password: str, *, new_account: bool,
                     displayname: str | None = None) -> Reply:
    """The password and the next steps, for the admin to pass on; `url` is the homeserver to type in."""
    localpart = user_id[1:].split(":", 1)[0]
    head = f"🔑 New account {user_id}" if new_account else f"🔑 New password for {user_id}"
    if displayname:
        head += f" ({displayname})"
    facts = [("User name", localpart), ("Password", password), ("Homeserver", url)]
    steps = [
        "Give these to the person privately (in person or by phone), not in a group chat.",
        f"In Element ({ELEMENT}): Sign in → Edit the homeserver → {url}, then the user name "
        "and password above." if new_account else
        "All their sessions were signed out: they sign in again with this password.",
        "After signing in: set up Secure Backup when Element offers it, and change the password "
        "(Settings → Account).",
        "Then delete this message.",
    ]
    body = "\n".join([head] + [f"{k}: {v}" for k, v in facts] + ["", "Next:"]
                     + [f"{n}. {s}" for n, s in enumerate(steps, 1)])
    html = (f"<b>{escape(head)}</b><br>"
            + "<br>".join(f"{escape(k)}: <code>{escape(v)}</code>" for k, v in facts)
            + "<br><br>Next:<ol>" + "".join(f"<li>{escape(s)}</li>" for s in steps) + "</ol>")
    return Reply(body, html)


def delivery_note(requester: str, failure: str | None, name: str) -> str:
    if failure is None:
        return (f"I sent the password to {requester} in a private encrypted room "
                "(“spbot (private)”; accept my invitation if you have not yet).")
    return (f"⚠️ But I could not send the password privately: {failure} "
            f"Use !user reset {name} to make a new one.")
