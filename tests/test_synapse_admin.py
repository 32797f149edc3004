"""The Synapse admin provider against the session's real Synapse (and a private one where the
test needs to know every admin on the server), plus the user-name and password rules.

Accounts made here carry a random suffix so they never collide with other modules' accounts;
the `bot` fixture and the `people` accounts are not touched.
"""
from __future__ import annotations

import asyncio
import http.server
import re
import secrets
import socket
import threading
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from spbot.providers.synapse_admin import (
    AccessTokenRejected, AdminApiUnavailable, HomeserverFailed, HomeserverUnreachable,
    InvalidRequest, NotServerAdmin, Refused, RegistrationToken, SynapseAdmin, SynapseAdminError,
    TokenNotFound, UserDeactivated, UserExists, UserNotFound,
)
from spbot.devstack import Synapse, free_port
from spbot.providers.passwords import ALPHABET, entropy_bits, generate_password
from spbot.providers.usernames import MAX_LENGTH, UsernameError, is_reserved, validate_username

SUFFIX = secrets.token_hex(3)
ADMIN_PASSWORD = "synapse admin test password 7"


def name(base: str) -> str:
    return f"{base}_{SUFFIX}"


# -- helpers: real client-server API calls -------------------------------------------------


async def login(url: str, user: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(f"{url}/_matrix/client/v3/login", json={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
            "password": password})


async def token_for(url: str, user: str, password: str) -> str:
    response = await login(url, user, password)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


async def whoami_status(url: str, token: str) -> int:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(f"{url}/_matrix/client/v3/account/whoami",
                                  headers={"Authorization": f"Bearer {token}"})
        return response.status_code


async def register_with_token(url: str, localpart: str, password: str,
                              token: str) -> httpx.Response:
    """The m.login.registration_token UIA flow as a client does it; Synapse 1.163 asks for
    [m.login.registration_token, m.login.dummy]. Returns the last response."""
    body = {"username": localpart, "password": password, "inhibit_login": False}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        first = await http.post("/_matrix/client/v3/register", json=body)
        assert first.status_code == 401, first.text
        session = first.json()["session"]
        flows = [f["stages"] for f in first.json()["flows"]]
        assert any("m.login.registration_token" in stages for stages in flows), flows
        response = await http.post("/_matrix/client/v3/register", json={
            **body, "auth": {"type": "m.login.registration_token", "token": token,
                             "session": session}})
        for _ in range(3):  # any further stages Synapse asks for (m.login.dummy today)
            if response.status_code != 401 or "errcode" in response.json():
                return response
            done = set(response.json().get("completed", []))
            stages = next(s for s in flows if "m.login.registration_token" in s)
            remaining = [s for s in stages if s not in done]
            assert remaining == ["m.login.dummy"], remaining
            response = await http.post("/_matrix/client/v3/register", json={
                **body, "auth": {"type": "m.login.dummy", "session": session}})
        return response


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def admin_login(synapse) -> tuple[str, str]:
    """A homeserver admin of this module's own (not the bot): (user_id, password)."""
    user_id = synapse.register(name("useradmin"), ADMIN_PASSWORD, admin=True)
    return user_id, ADMIN_PASSWORD


@pytest.fixture
async def admin(synapse, admin_login) -> SynapseAdmin:
    token = await token_for(synapse.url, *admin_login)
    client = SynapseAdmin(synapse.url, token, synapse.server_name, timeout=30)
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
def private_synapse(tmp_path_factory):
    """A second homeserver where the test knows every admin (for the last-admin rule)."""
    server = Synapse(tmp_path_factory.mktemp("synapse-private"), free_port())
    server.configure()
    server.start()
    yield server
    server.stop()


class Canned(http.server.BaseHTTPRequestHandler):
    """A loopback HTTP server answering every request with one canned response."""

    status = 404
    body = b"<html><body><center><h1>404 Not Found</h1></center><hr>nginx</body></html>"
    content_type = "text/html"

    def _answer(self) -> None:
        body = self.body
        if b"{auth}" in body:  # echo the Authorization header back, as a careless proxy might
            body = body.replace(b"{auth}", self.headers.get("Authorization", "").encode())
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def canned_server():
    servers = []

    def start(status: int, body: bytes, content_type: str = "text/html") -> str:
        handler = type("Handler", (Canned,), {"status": status, "body": body,
                                              "content_type": content_type})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def counting_transport() -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500, json={"errcode": "M_UNKNOWN", "error": "should not be called"})

    return httpx.MockTransport(handle), seen


# -- accounts ------------------------------------------------------------------------------

@pytest.mark.matrix
async def test_add_creates_an_account_that_logs_in_with_the_generated_password(synapse, admin):
    localpart = name("kid")
    account = await admin.add_user(localpart, displayname="Kid Tester")
    assert account.user.user_id == f"@{localpart}:{synapse.server_name}"
    assert account.user.admin is False and account.user.deactivated is False
    assert account.user.displayname == "Kid Tester"
    assert re.fullmatch(r"([a-z2-9]{4}-){4}[a-z2-9]{4}", account.password)
    assert account.password not in repr(account)

    response = await login(synapse.url, account.user.user_id, account.password)
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == account.user.user_id
    wrong = await login(synapse.url, account.user.user_id, "wrong" + account.password)
    assert wrong.status_code == 403

    fetched = await admin.get_user(localpart)
    assert fetched is not None and fetched.displayname == "Kid Tester"
    assert fetched.created is not None
    assert abs(fetched.created - datetime.now(timezone.utc)) < timedelta(minutes=10)
    assert await admin.user_exists(account.user.user_id)
    assert not await admin.user_exists(name("nobody_here"))


@pytest.mark.matrix
async def test_add_with_admin_flag_makes_a_homeserver_admin(synapse, admin):
    account = await admin.add_user(name("parent"), admin=True)
    assert account.user.admin is True
    new_admin = SynapseAdmin(synapse.url, await token_for(synapse.url, account.user.user_id,
                                                          account.password), synapse.server_name)
    async with new_admin:
        assert await new_admin.check_access() == account.user.user_id
        assert re.match(r"\d+\.\d+", await new_admin.server_version())


@pytest.mark.matrix
async def test_adding_an_existing_name_changes_nothing(synapse, admin):
    localpart = name("taken")
    first = await admin.create_user(localpart, "the original password 1", displayname="First")
    with pytest.raises(UserExists) as caught:
        await admin.create_user(localpart, "a replacement password 2", admin=True,
                                displayname="Second")
    assert caught.value.user_id == first.user_id
    assert first.user_id in str(caught.value) and synapse.server_name in str(caught.value)
    assert "replacement" not in str(caught.value)
    with pytest.raises(UserExists):
        await admin.add_user(localpart)

    assert (await login(synapse.url, first.user_id, "the original password 1")).status_code == 200
    assert (await login(synapse.url, first.user_id, "a replacement password 2")).status_code == 403
    unchanged = await admin.get_user(localpart)
    assert unchanged.admin is False and unchanged.displayname == "First"


@pytest.mark.matrix
async def test_an_existing_account_of_someone_else_is_not_overwritten(synapse, admin, people):
    """The session's alice, registered by conftest, keeps her password."""
    from tests.conftest import PASSWORD
    with pytest.raises(UserExists):
        await admin.create_user("alice", "not alices password at all")
    assert (await login(synapse.url, people["alice"].user_id, PASSWORD)).status_code == 200


@pytest.mark.matrix
async def test_list_shows_admin_and_deactivated_flags_across_pages(synapse, admin, admin_login):
    plain = await admin.create_user(name("lister"), "lister password 123")
    boss = await admin.create_user(name("lister_admin"), "lister password 123", admin=True)
    gone = await admin.create_user(name("lister_gone"), "lister password 123")
    await admin.deactivate(gone.user_id)

    everyone = {u.user_id: u for u in await admin.list_users()}
    assert everyone[plain.user_id].admin is False and everyone[plain.user_id].deactivated is False
    assert everyone[boss.user_id].admin is True
    assert everyone[gone.user_id].deactivated is True
    assert everyone[admin_login[0]].admin is True
    # last_seen is present as a field (may still be None: Synapse flushes client IPs lazily)
    assert all(u.last_seen is None or isinstance(u.last_seen, datetime) for u in everyone.values())

    active = {u.user_id for u in await admin.list_users(include_deactivated=False)}
    assert plain.user_id in active and gone.user_id not in active

    paged = [u.user_id for u in await admin.list_users(page_size=2)]
    assert len(paged) == len(set(paged)) == len(everyone)
    assert set(paged) == set(everyone)


@pytest.mark.matrix
async def test_reset_password_old_fails_new_works_and_devices_are_logged_out(synapse, admin):
    user = await admin.create_user(name("forgetful"), "the old password 123")
    old_session = await token_for(synapse.url, user.user_id, "the old password 123")

    new_password = await admin.reset_password(user.localpart)
    assert re.fullmatch(r"([a-z2-9]{4}-){4}[a-z2-9]{4}", new_password)
    assert (await login(synapse.url, user.user_id, "the old password 123")).status_code == 403
    assert (await login(synapse.url, user.user_id, new_password)).status_code == 200
    assert await whoami_status(synapse.url, old_session) == 401

    kept = await token_for(synapse.url, user.user_id, new_password)
    await admin.reset_password(user.user_id, "a chosen password 456", logout_devices=False)
    assert await whoami_status(synapse.url, kept) == 200
    assert (await login(synapse.url, user.user_id, "a chosen password 456")).status_code == 200


@pytest.mark.matrix
async def test_reset_refuses_missing_deactivated_and_the_bots_own_account(synapse, admin,
                                                                          admin_login):
    with pytest.raises(UserNotFound) as missing:
        await admin.reset_password(name("ghost"))
    assert synapse.server_name in str(missing.value)

    gone = await admin.create_user(name("reset_gone"), "some password 123")
    await admin.deactivate(gone.user_id)
    with pytest.raises(UserDeactivated):
        await admin.reset_password(gone.user_id)

    with pytest.raises(Refused) as itself:
        await admin.reset_password(admin_login[0])
    assert "own account" in str(itself.value)
    assert (await login(synapse.url, *admin_login)).status_code == 200


@pytest.mark.matrix
async def test_deactivate_stops_logins_and_erase_marks_the_account(synapse, admin):
    user = await admin.create_user(name("leaver"), "leaver password 123")
    assert (await login(synapse.url, user.user_id, "leaver password 123")).status_code == 200
    after = await admin.deactivate(user.localpart)
    assert after.deactivated is True and after.erased is False
    assert (await login(synapse.url, user.user_id, "leaver password 123")).status_code == 403

    erased = await admin.create_user(name("eraser"), "eraser password 123", displayname="Gone")
    after = await admin.deactivate(erased.user_id, erase=True)
    assert after.deactivated is True and after.erased is True

    with pytest.raises(UserExists) as again:
        await admin.create_user(user.localpart, "reuse attempt 123")
    assert again.value.deactivated is True and "deactivated" in str(again.value)


@pytest.mark.matrix
async def test_deactivate_refuses_the_bot_itself_and_missing_accounts(synapse, admin, admin_login):
    with pytest.raises(Refused) as itself:
        await admin.deactivate(admin_login[0])
    assert "itself" in str(itself.value)
    assert (await login(synapse.url, *admin_login)).status_code == 200
    with pytest.raises(UserNotFound):
        await admin.deactivate(name("never_was"))


@pytest.mark.matrix
async def test_last_admin_besides_the_bot_is_never_deactivated(private_synapse):
    server = private_synapse
    bot_id = server.register("family_bot", ADMIN_PASSWORD, admin=True)
    mom = server.register("mom", ADMIN_PASSWORD, admin=True)
    kid = server.register("kid", ADMIN_PASSWORD, admin=False)
    token = await token_for(server.url, bot_id, ADMIN_PASSWORD)
    async with SynapseAdmin(server.url, token, server.server_name) as admin:
        with pytest.raises(Refused) as last:
            await admin.check_deactivate("mom")
        assert "last homeserver admin" in str(last.value) and mom in str(last.value)
        with pytest.raises(Refused):
            await admin.deactivate(mom)
        assert (await admin.get_user(mom)).deactivated is False
        assert (await admin.check_deactivate(kid)).user_id == kid  # non-admins are fine

        dad = server.register("dad", ADMIN_PASSWORD, admin=True)
        await admin.deactivate("mom")                      # dad remains: allowed
        with pytest.raises(Refused):                       # now dad is the last one
            await admin.deactivate(dad)
        assert (await login(server.url, dad, ADMIN_PASSWORD)).status_code == 200


@pytest.mark.matrix
async def test_whois_lists_connections(synapse, admin):
    user = await admin.create_user(name("chatty"), "chatty password 123")
    session = await token_for(synapse.url, user.user_id, "chatty password 123")
    assert await whoami_status(synapse.url, session) == 200   # a request records the client IP
    whois = await admin.whois(user.localpart)
    assert whois.user_id == user.user_id
    assert whois.connections and whois.connections[0].ip == "127.0.0.1"
    assert whois.last_seen is not None


# -- invites (registration tokens) ---------------------------------------------------------


@pytest.mark.matrix
async def test_single_use_invite_registers_one_account_then_is_used_up(synapse, admin):
    invite = await admin.create_registration_token(uses=1, expires=timedelta(days=7))
    assert invite.uses_allowed == 1 and invite.completed == 0 and invite.is_valid()
    in_a_week = datetime.now(timezone.utc) + timedelta(days=7)
    assert abs(invite.expires - in_a_week) < timedelta(minutes=1)
    assert invite.token in {t.token for t in await admin.list_registration_tokens()}

    newcomer = name("newcomer")
    response = await register_with_token(synapse.url, newcomer, "newcomer password 1", invite.token)
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == f"@{newcomer}:{synapse.server_name}"
    assert (await login(synapse.url, newcomer, "newcomer password 1")).status_code == 200

    used = {t.token: t for t in await admin.list_registration_tokens()}[invite.token]
    assert used.completed == 1 and used.uses_left == 0 and not used.is_valid()
    assert invite.token not in {t.token for t in await admin.list_registration_tokens(valid=True)}
    assert invite.token in {t.token for t in await admin.list_registration_tokens(valid=False)}

    second = await register_with_token(synapse.url, name("latecomer"), "late password 1",
                                       invite.token)
    assert second.status_code == 401 and second.json().get("errcode") == "M_UNAUTHORIZED"


@pytest.mark.matrix
async def test_revoked_invite_no_longer_registers(synapse, admin):
    invite = await admin.create_registration_token(uses=None)
    assert invite.uses_allowed is None and invite.expires is None and invite.uses_left is None
    await admin.delete_registration_token(invite.token)
    assert invite.token not in {t.token for t in await admin.list_registration_tokens()}

    response = await register_with_token(synapse.url, name("too_late"), "late password 1",
                                         invite.token)
    assert response.status_code == 401 and response.json().get("errcode") == "M_UNAUTHORIZED"

    with pytest.raises(TokenNotFound) as gone:
        await admin.delete_registration_token(invite.token)
    assert invite.token not in str(gone.value)


@pytest.mark.matrix
async def test_invite_with_chosen_token_and_bad_values(synapse, admin):
    chosen = "family-" + secrets.token_hex(4)
    invite = await admin.create_registration_token(uses=3, token=chosen)
    assert invite.token == chosen and invite.uses_left == 3
    with pytest.raises(InvalidRequest) as duplicate:   # Synapse: "Token already exists: <token>"
        await admin.create_registration_token(token=chosen)
    assert chosen not in str(duplicate.value) and synapse.server_name in str(duplicate.value)
    await admin.delete_registration_token(chosen)

    short = await admin.create_registration_token(length=8)
    assert len(short.token) == 8
    await admin.delete_registration_token(short.token)

    for bad in [dict(uses=0), dict(expires=timedelta(seconds=-5)), dict(token="has space"),
                dict(length=65)]:
        with pytest.raises(InvalidRequest):
            await admin.create_registration_token(**bad)
    with pytest.raises(InvalidRequest):
        await admin.delete_registration_token("../users")


def test_registration_token_validity_rules():
    now = datetime.now(timezone.utc)
    assert RegistrationToken("a", None).is_valid()
    assert not RegistrationToken("a", 2, pending=1, completed=1).is_valid()
    assert RegistrationToken("a", 2, pending=0, completed=1).uses_left == 1
    assert not RegistrationToken("a", None, expires=now - timedelta(seconds=1)).is_valid()
    assert RegistrationToken.from_api({"token": "t", "uses_allowed": 1, "pending": 0,
                                       "completed": 0, "expiry_time": 1625394937000}
                                      ).expires.year == 2021


# -- errors --------------------------------------------------------------------------------


@pytest.mark.matrix
async def test_a_non_admin_token_gets_a_clear_not_admin_error(synapse):
    plain = name("plainuser")
    synapse.register(plain, "plain password 123", admin=False)
    token = await token_for(synapse.url, plain, "plain password 123")
    async with SynapseAdmin(synapse.url, token, synapse.server_name) as client:
        calls = [client.list_users(), client.create_user(name("sneaky"), "pw 1234567890"),
                 client.create_registration_token(), client.list_registration_tokens(),
                 client.check_access()]
        for call in calls:
            with pytest.raises(NotServerAdmin) as caught:
                await call
            message = str(caught.value)
            assert caught.value.status == 403
            assert "not a homeserver admin" in message and synapse.server_name in message
            assert token not in message and "pw 1234567890" not in message
        assert f"@{plain}:{synapse.server_name}" in message  # whoami ran: names the account
        assert not await _exists_as_admin(synapse, name("sneaky"))


async def _exists_as_admin(synapse, localpart: str) -> bool:
    token = await token_for(synapse.url, name("useradmin"), ADMIN_PASSWORD)
    async with SynapseAdmin(synapse.url, token, synapse.server_name) as client:
        return await client.user_exists(localpart)


@pytest.mark.matrix
async def test_an_unknown_token_is_rejected_clearly(synapse):
    bogus = "syt_" + secrets.token_urlsafe(20)
    async with SynapseAdmin(synapse.url, bogus, synapse.server_name) as client:
        with pytest.raises(AccessTokenRejected) as caught:
            await client.list_users()
    assert "M_UNKNOWN_TOKEN" in str(caught.value) and bogus not in str(caught.value)
    assert "log" in str(caught.value)


@pytest.mark.matrix
async def test_synapse_refusing_a_name_becomes_invalid_request(synapse, admin):
    numeric = str(10**9 + secrets.randbelow(10**9))
    for localpart, said in [("_" + name("under"), "may not begin with _"),
                            (numeric, "Numeric user IDs")]:
        with pytest.raises(InvalidRequest) as caught:
            await admin.create_user(localpart, "some password 123")
        assert said in str(caught.value) and caught.value.errcode == "M_INVALID_USERNAME"


async def test_other_servers_and_odd_names_are_refused_before_any_request():
    transport, seen = counting_transport()
    async with SynapseAdmin("http://127.0.0.1:9", "tok", "example.org",
                            transport=transport) as client:
        assert client.user_id("alice") == "@alice:example.org"
        assert client.user_id("@alice:example.org") == "@alice:example.org"
        for bad in ["@alice:evil.org", "@alice", "a/b", "a b", ""]:
            with pytest.raises(InvalidRequest):
                client.user_id(bad)
        with pytest.raises(InvalidRequest):
            await client.reset_password("@alice:evil.org", "pw")
    assert seen == []


async def test_unreachable_homeserver():
    url = f"http://127.0.0.1:{free_port()}"
    async with SynapseAdmin(url, "secret-token-xyz", "example.org", timeout=5) as client:
        with pytest.raises(HomeserverUnreachable) as caught:
            await client.list_users()
    message = str(caught.value)
    assert "Could not reach" in message and "example.org" in message and url in message
    assert "secret-token-xyz" not in message


async def test_homeserver_that_never_answers_times_out():
    with socket.socket() as listener:       # accepts connections (kernel backlog), never replies
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        async with SynapseAdmin(url, "tok", "example.org", timeout=0.5) as client:
            started = asyncio.get_running_loop().time()
            with pytest.raises(HomeserverUnreachable) as caught:
                await client.list_registration_tokens()
            assert asyncio.get_running_loop().time() - started < 5
    assert "did not answer within 0.5 s" in str(caught.value)


async def test_a_proxy_hiding_the_admin_api(canned_server):
    url = canned_server(404, Canned.body)
    async with SynapseAdmin(url, "tok", "example.org") as client:
        with pytest.raises(AdminApiUnavailable) as caught:
            await client.create_user("alice", "pw 1234567890")
    assert "/_synapse/admin" in str(caught.value) and url in str(caught.value)


async def test_server_errors_name_the_homeserver_and_hide_the_token(canned_server):
    url = canned_server(502, b'{"errcode": "M_UNKNOWN", "error": "upstream said {auth}"}',
                        "application/json")
    async with SynapseAdmin(url, "very-secret-token", "example.org") as client:
        with pytest.raises(HomeserverFailed) as caught:
            await client.list_users()
    message = str(caught.value)
    assert "HTTP 502" in message and "example.org" in message
    assert "very-secret-token" not in message and "[hidden]" in message


async def test_a_200_that_is_not_json_is_not_trusted(canned_server):
    url = canned_server(200, b"<html>welcome</html>")
    async with SynapseAdmin(url, "tok", "example.org") as client:
        with pytest.raises(HomeserverFailed):
            await client.list_registration_tokens()


async def test_errors_share_one_base_class():
    for cls in (AccessTokenRejected, AdminApiUnavailable, HomeserverFailed, HomeserverUnreachable,
                InvalidRequest, NotServerAdmin, Refused, TokenNotFound, UserDeactivated,
                UserExists, UserNotFound):
        assert issubclass(cls, SynapseAdminError)


# -- user names ----------------------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [
    ("alice", "alice"), ("bob_smith", "bob_smith"), ("  carol  ", "carol"), ("d2", "d2"),
    ("a" * MAX_LENGTH, "a" * MAX_LENGTH), ("grandma_1950", "grandma_1950"),
])
def test_valid_names(raw, expected):
    assert validate_username(raw, bot_localpart="spbot") == expected


@pytest.mark.parametrize("raw, says", [
    ("", "No user name given"),
    ("   ", "No user name given"),
    ("a", "too short"),
    ("a" * (MAX_LENGTH + 1), "32 characters long; user names may have at most 31"),
    ("Alice", "lowercase"),
    ("Bob Smith", "try “bob_smith”"),
    ("1alice", "start with a letter"),
    ("_alice", "starts with an underscore"),
    ("bob-smith", "only a–z, 0–9 and _"),
    ("bob-smith", "try “bob_smith”"),
    ("bob.smith", "“.”"),
    ("bob smith", "a space"),
    ("alice\u200b", "U+200B"),
    ("ålice", "start with a letter"),
    ("alïce", "“ï”"),
    ("@alice:example.org", "without @ or the server"),
    ("root", "reserved"),
    ("admin", "reserved"),
    ("postmaster", "reserved"),
    ("nextcloud", "reserved"),
    ("matrix_synapse", "reserved"),
    ("systemd_timesync", "“systemd”"),
    ("nixbld1", "“nixbld”"),
    ("spbot", "bot's own account"),
])
def test_invalid_names_say_which_rule(raw, says):
    with pytest.raises(UsernameError) as caught:
        validate_username(raw, bot_localpart="@spbot:example.org")
    assert says in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)


def test_reserved_names_and_extra_reserved():
    assert is_reserved("root") and is_reserved("systemd_x") and not is_reserved("alice")
    assert is_reserved("family_bot", bot_localpart="family_bot")
    with pytest.raises(UsernameError, match="reserved"):
        validate_username("grandpa", extra_reserved=["grandpa"])
    with pytest.raises(UsernameError):
        validate_username("\x1b[31mred", bot_localpart="spbot")


@pytest.mark.parametrize("raw", ["root", "Alice", "bob-smith", "x", "@a:b", "spbot", ""])
async def test_invalid_names_never_reach_the_homeserver(raw):
    transport, seen = counting_transport()
    async with SynapseAdmin("http://127.0.0.1:9", "tok", "example.org",
                            transport=transport) as client:
        with pytest.raises(UsernameError):
            await client.add_user(raw, bot_localpart="spbot")
    assert seen == []


@pytest.mark.matrix
async def test_add_refuses_the_bots_own_name_even_if_not_passed(synapse, admin, admin_login):
    with pytest.raises(UsernameError, match="bot's own account"):
        await admin.add_user(admin_login[0].split(":")[0][1:])


# -- passwords -----------------------------------------------------------------------------


def test_generated_passwords_are_strong_readable_and_different():
    seen = {generate_password() for _ in range(200)}
    assert len(seen) == 200
    for password in seen:
        assert re.fullmatch(r"([a-z2-9]{4}-){4}[a-z2-9]{4}", password)
        assert not set(password) & set("01ilo")
    assert len(set(ALPHABET)) == 31 and entropy_bits() > 95
    assert len(generate_password(groups=6)) == 29
    with pytest.raises(ValueError):
        generate_password(groups=2)


# -- the account list as Synapse really filters it -----------------------------------------

@pytest.mark.matrix
async def test_list_shows_locked_accounts(synapse, admin):
    """Synapse leaves locked accounts out of GET /v2/users unless locked=true."""
    locked = await admin.create_user(name("locked"), "locked password 123")
    await admin._request("PUT", f"/_synapse/admin/v2/users/{locked.user_id}", "locking",
                         json={"locked": True})
    everyone = {u.user_id: u for u in await admin.list_users()}
    assert locked.user_id in everyone and everyone[locked.user_id].locked is True
    active = {u.user_id for u in await admin.list_users(include_deactivated=False)}
    assert locked.user_id in active


def mas_delegating_synapse() -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """Synapse with auth delegated to MAS (MSC3861) cannot run here; this double answers the
    account list as synapse/rest/admin/users.py UsersRestServletV2.on_GET does there:
    `guests` defaults to true and is refused with 400 M_INVALID_PARAM."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/_matrix/client/v3/account/whoami":
            return httpx.Response(200, json={"user_id": "@bot:example.org"})
        if request.url.path == "/_synapse/admin/v2/users/@mom:example.org":
            return httpx.Response(200, json={"name": "@mom:example.org", "admin": True,
                                             "deactivated": False, "locked": False})
        if request.url.path == "/_synapse/admin/v2/users":
            if request.url.params.get("guests", "true").lower() != "false":
                return httpx.Response(400, json={
                    "errcode": "M_INVALID_PARAM",
                    "error": "The guests parameter is not supported when delegating to MAS."})
            return httpx.Response(200, json={"users": [
                {"name": "@mom:example.org", "admin": True, "deactivated": False,
                 "locked": False, "is_guest": False},
                {"name": "@bot:example.org", "admin": True, "deactivated": False,
                 "locked": False, "is_guest": False}], "total": 2})
        return httpx.Response(404, json={"errcode": "M_UNRECOGNIZED", "error": "Unrecognized"})

    return httpx.MockTransport(handle), seen


async def test_list_and_access_check_work_on_a_mas_delegating_homeserver():
    transport, seen = mas_delegating_synapse()
    async with SynapseAdmin("http://hs.invalid", "tok", "example.org", transport=transport) as hs:
        assert await hs.check_access() == "@bot:example.org"
        assert [u.user_id for u in await hs.list_users()] == ["@mom:example.org", "@bot:example.org"]
        with pytest.raises(Refused, match="last homeserver admin"):
            await hs.check_deactivate("mom")
    listed = [r for r in seen if r.url.path == "/_synapse/admin/v2/users"]
    assert all(r.url.params["guests"] == "false" and r.url.params["locked"] == "true" for r in listed)


@pytest.mark.matrix
async def test_registration_mode_is_detected(synapse, admin, tmp_path):
    assert await admin.registration_mode() == "token"  # the dev homeserver requires tokens
    import yaml
    for mode, changes in (("closed", {"enable_registration": False}),
                          ("open", {"registration_requires_token": False,
                                    "enable_registration_without_verification": True})):
        other = Synapse(tmp_path / mode, free_port())
        other.configure()
        config = yaml.safe_load(other.config_path.read_text())
        config.update(changes)
        other.config_path.write_text(yaml.safe_dump(config))
        other.start()
        try:
            async with SynapseAdmin(other.url, "no-token-needed", other.server_name) as hs:
                assert await hs.registration_mode() == mode
        finally:
            other.stop()
