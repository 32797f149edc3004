"""!user: accounts on the family's Matrix homeserver through Synapse's admin API — add, list,
reset, deactivate — and invites (registration tokens) for people to sign up themselves.

Passwords go only to the requesting admin, in an encrypted direct room (spbot/features/users/)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated

from spbot.context import Context, UserError
from spbot.features.users import UsersFeature
from spbot.features.users.messages import ELEMENT, ago, delivery_note
from spbot.providers.errors import ProviderError
from spbot.providers.synapse_admin import HomeserverUser, RegistrationToken
from spbot.registry import ONE_OTHER_ADMIN, Arg, Policy, command, parse_span
from spbot.render import Item, Reply, escape, items


class Expiry:
    """`--expires 7d` (also 12h, 30m) or `--expires never`; parsed to a timedelta (0: never).
    At most a year: an invite is for someone about to sign up, and `never` says so when meant."""
    MOST = 365 * 86400.0

    @classmethod
    def parse_arg(cls, word: str) -> timedelta:
        if word.lower() == "never":
            return timedelta(0)
        seconds = parse_span(word, cls.MOST)
        if seconds <= 0:
            raise ValueError("give a duration such as 7d, 12h or 30m, or never")
        return timedelta(seconds=seconds)


Name = Annotated[str, Arg(metavar="name", help="user name, e.g. grandma or @grandma:example.org")]


# -- !user add -----------------------------------------------------------------------------


def _admin_needs_approval(args: dict) -> Policy | None:
    # A homeserver admin can reset any password through the admin API: as much power as !user reset.
    return ONE_OTHER_ADMIN if args.get("admin") else None


async def add_preview(bot, name: str, admin: bool = False, display: str | None = None) -> str:
    async with bot.feature(UsersFeature).admin_api() as synapse:
        try:
            user_id = synapse.user_id(name)
        except (UserError, ProviderError) as exc:
            return f"⚠️ {exc.what}"
    return (f"Creates {user_id} as a homeserver ADMIN: it can reset any account's password and "
            "deactivate accounts through the admin API. The password goes privately to the requester.")


@command("user add", group="users", help="new account with a generated password, sent to you privately",
         policy_when=_admin_needs_approval, preview=add_preview)
async def user_add(ctx: Context, name: Name, *, admin: bool = False,
                   display: str | None = None) -> Reply:
    accounts = ctx.feature(UsersFeature)
    localpart = accounts.check_name(name)         # no request for a bad name
    display = _clean_display(display)
    async with accounts.admin_api() as synapse:
        account = await synapse.add_user(localpart, admin=admin, displayname=display,
                                         bot_localpart=ctx.config.user_id)
    user = account.user
    message = accounts.password_message(user.user_id, account.password, new_account=True,
                                        displayname=display)
    failure = await accounts.send_password(ctx.sender, message, account.password)
    role = "a homeserver admin" if user.admin else "a regular account"
    return Reply.text(f"✅ Created {user.user_id} ({role}"
                      + (f", shown as “{display}”" if display else "") + ").\n"
                      + delivery_note(ctx.sender, failure, user.localpart))


def _clean_display(display: str | None) -> str | None:
    if display is None:
        return None
    clean = " ".join("".join(c for c in display if c.isprintable()).split())
    if len(clean) > 100:
        raise UserError("That display name is too long.", "Use at most 100 characters.")
    return clean or None


# -- !user list ----------------------------------------------------------------------------


@command("user list", group="users", help="accounts: admin, deactivated, last seen")
async def user_list(ctx: Context, *, active: bool = False) -> Reply:
    async with ctx.feature(UsersFeature).admin_api() as synapse:
        users = await synapse.list_users(include_deactivated=not active)
    now = datetime.now(timezone.utc)
    entries = [_user_item(ctx, u, now) for u in users]
    admins = sum(1 for u in users if u.admin and not u.deactivated)
    gone = sum(1 for u in users if u.deactivated)
    title = (f"👥 {len(users)} accounts on {ctx.feature(UsersFeature).server_name()}: {admins} admins, "
             f"{gone} deactivated")
    return items(title, entries)


def _user_item(ctx: Context, user: HomeserverUser, now: datetime) -> Item:
    if user.deactivated:
        state = "deactivated, erased" if user.erased else "deactivated"
    else:
        state = "locked" if user.locked else "active"
    name = user.displayname or ""
    if user.user_id == ctx.config.user_id:
        name = f"{name} (this bot)".strip()
    return Item(user.user_id, [name, "admin" if user.admin else "", state, f"last seen {ago(user.last_seen, now)}"])


# -- !user reset ---------------------------------------------------------------------------


async def reset_preview(bot, name: str) -> str:
    async with bot.feature(UsersFeature).admin_api() as synapse:
        user = await _describe_target(bot, synapse, name, "reset the password of")
    return (f"New password for {user}; all its sessions are signed out. The password goes "
            "privately to the requester.")


@command("user reset", group="users", help="new password for an account, sent to you privately (needs approval)",
         dangerous=True, preview=reset_preview)
async def user_reset(ctx: Context, name: Name) -> Reply:
    accounts = ctx.feature(UsersFeature)
    async with accounts.admin_api() as synapse:
        user_id = synapse.user_id(name)
        accounts.refuse_the_bot(user_id, "reset the password of")
        refuse_own_reset(ctx, user_id)
        password = await synapse.reset_password(user_id)
    message = accounts.password_message(user_id, password, new_account=False)
    failure = await accounts.send_password(ctx.sender, message, password)
    localpart = user_id[1:].split(":", 1)[0]
    return Reply.text(f"✅ {user_id} has a new password; all its sessions were signed out.\n"
                      + delivery_note(ctx.sender, failure, localpart))


def refuse_own_reset(ctx: Context, user_id: str) -> None:
    # A reset signs out every session, including the one that would read the new password.
    if user_id == ctx.sender:
        raise UserError("That is your own account: a reset would sign you out everywhere, and "
                        "the new password would wait in a room you could no longer read.",
                        "Change your password in Element instead (Settings → Account).")


# -- !user deactivate ----------------------------------------------------------------------


async def deactivate_preview(bot, name: str, erase: bool = False) -> str:
    accounts = bot.feature(UsersFeature)
    async with accounts.admin_api() as synapse:
        try:
            accounts.refuse_the_bot(synapse.user_id(name), "deactivate")
            user = await synapse.check_deactivate(name)
        except (UserError, ProviderError) as exc:
            return f"⚠️ This will not work as asked: {exc.what}"
    what = " and erases its messages and profile" if erase else ""
    role = " (a homeserver admin)" if user.admin else ""
    return (f"Deactivates {user.user_id}{role}{what}: it can never sign in again and its name "
            "can never be used again.")


@command("user deactivate", group="users", help="close an account for good; --erase also forgets its messages "
         "(needs approval)", dangerous=True, preview=deactivate_preview)
async def user_deactivate(ctx: Context, name: Name, *, erase: bool = False) -> Reply:
    accounts = ctx.feature(UsersFeature)
    async with accounts.admin_api() as synapse:
        accounts.refuse_the_bot(synapse.user_id(name), "deactivate")
        user = await synapse.deactivate(name, erase=erase)
    erased = " Its messages and profile are erased." if user.erased else ""
    return Reply.text(f"✅ {user.user_id} is deactivated: it cannot sign in any more.{erased}")


async def _describe_target(bot, synapse, name: str, doing: str) -> str:
    """`@kid:example.org (Kid, last seen 2h ago)` for a preview; a warning line if it will fail."""
    try:
        user_id = synapse.user_id(name)
        bot.feature(UsersFeature).refuse_the_bot(user_id, doing)
        user = await synapse.get_user(user_id)
    except (UserError, ProviderError) as exc:
        return f"⚠️ {exc.what}"
    if user is None:
        return f"{user_id} (⚠️ no such account: this will fail)"
    if user.deactivated:
        return f"{user_id} (⚠️ deactivated: this will fail)"
    seen = ago(user.last_seen, datetime.now(timezone.utc))
    name_part = f"{user.displayname}, " if user.displayname else ""
    return f"{user_id} ({name_part}last seen {seen})"


# -- invites -------------------------------------------------------------------------------


@command("user invite", group="users", help="a registration token (invite) for someone to sign up in Element")
async def user_invite(ctx: Context, *, uses: Annotated[int | None, Arg(max=10_000)] = None,
                      expires: Expiry | None = None) -> Reply:
    accounts = ctx.feature(UsersFeature)
    chosen = accounts.settings
    uses = chosen.invite_uses if uses is None else uses
    if expires is None:
        expires = timedelta(seconds=chosen.invite_expires)
    async with accounts.admin_api() as synapse:
        mode = await synapse.registration_mode()
        if mode == "closed":
            raise UserError(
                f"{synapse.where} does not let anyone sign up (registration is off), so an "
                "invite would not work and none was made.",
                "Set enable_registration: true and registration_requires_token: true in "
                "Synapse's homeserver.yaml and restart Synapse; or add the account yourself "
                f"with {ctx.config.command_prefix}user add.")
        invite = await synapse.create_registration_token(uses=uses, expires=expires or None)
    reply = _invite_reply(ctx, invite)
    if mode == "open":
        reply += Reply.text(f"⚠️ {synapse.where} lets ANYONE sign up without an invite "
                            "(registration_requires_token is off); set it to true in "
                            "homeserver.yaml so only invited people can.")
    return reply


def _invite_reply(ctx: Context, invite: RegistrationToken) -> Reply:
    accounts = ctx.feature(UsersFeature)
    url, prefix = accounts.public_url(), ctx.config.command_prefix
    limits = [f"{invite.uses_allowed} use(s)" if invite.uses_allowed else "unlimited uses",
              f"valid until {accounts.when(invite.expires)}" if invite.expires
              else "no expiry"]
    head = f"🎟 Invite ready: {invite.token} ({', '.join(limits)})"
    steps = [f"Install Element ({ELEMENT}) and choose Create account.",
             f"Edit the homeserver to {url}.",
             "Choose a user name (lowercase letters, digits, _) and a strong password.",
             f"When asked for a registration token, enter {invite.token}."]
    tail = f"Revoke it with {prefix}user invite revoke {invite.token}; see all with {prefix}user invites."
    body = "\n".join([head, "To sign up:"] + [f"{n}. {s}" for n, s in enumerate(steps, 1)] + [tail])
    html = (f"<b>🎟 Invite ready: <code>{escape(invite.token)}</code></b> ({escape(', '.join(limits))})"
            "<br>To sign up:<ol>" + "".join(f"<li>{escape(s)}</li>" for s in steps) + "</ol>"
            + escape(tail))
    return Reply(body, html)


@command("user invites", group="users", help="registration tokens: uses left, expiry")
async def user_invites(ctx: Context) -> Reply:
    accounts = ctx.feature(UsersFeature)
    async with accounts.admin_api() as synapse:
        invites = await synapse.list_registration_tokens()
    if not invites:
        return Reply.text(f"No invites. Make one with {ctx.config.command_prefix}user invite.")
    now = datetime.now(timezone.utc)
    entries = [Item(i.token, [_invite_state(i, now), f"used {_uses(i)}", f"{i.pending} pending",
                              f"expires {accounts.when(i.expires)}"]) for i in invites]
    valid = sum(1 for i in invites if i.is_valid(now))
    return items(f"🎟 {len(invites)} invites, {valid} usable", entries)


def _uses(invite: RegistrationToken) -> str:
    allowed = "∞" if invite.uses_allowed is None else str(invite.uses_allowed)
    return f"{invite.completed}/{allowed}"


def _invite_state(invite: RegistrationToken, now: datetime) -> str:
    if invite.expires is not None and invite.expires <= now:
        return "expired"
    return "usable" if invite.is_valid(now) else "used up"


@command("user invite revoke", group="users", help="revoke an invite so nobody can sign up with it")
async def user_invite_revoke(ctx: Context, token: str) -> Reply:
    async with ctx.feature(UsersFeature).admin_api() as synapse:
        await synapse.delete_registration_token(token)
    return Reply.text(f"✅ Invite {token.strip()} revoked: nobody can sign up with it any more.")
