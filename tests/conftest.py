"""One real Synapse per test session (free port, temp dir), the bot as a real process, and real E2EE
admin clients. Tests that need none of this simply do not ask for these fixtures."""
from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from spbot.chatclient import ChatClient
from spbot.devstack import BotProcess, PlainSession, Synapse, free_port, write_bot_config

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple 42"
BOT_PASSWORD = "bot password that must never be logged"
# Short ages so the "sent while offline" and "undecryptable" paths can be waited out in a test.
TEST_BOT_SETTINGS = """
max_command_age = "8s"
undecryptable_wait = "3s"
progress_interval = "0.5s"
plugins = ["tests.bot_plugins"]
"""
TEST_BOT_TABLES = """
[policies.danger-two]
approvals = 2
"""


def _quiet_schedules(extra: str) -> str:
    """Test bots never run the real machine's package manager on a schedule (a session can span 06:00)."""
    return "" if "[upgrade]" in extra else "\n[upgrade]\ncheck_enabled = false\n"


BOTS: list["TestBot"] = []        # every bot process of this session, for the failure report below
MADE_BOTS: list["TestBot"] = []   # the bots make_bot started; each ends with the test or module that made it
LOG_TAIL = 60                     # lines of a bot's log shown under a failed test


def _stop_made_since(first: int) -> None:
    for test_bot in MADE_BOTS[first:]:
        test_bot.stop()
    del MADE_BOTS[first:]


@pytest.fixture(scope="module", autouse=True)
def _made_bots_end_with_their_module():
    """A bot a module's fixture made stops when that module ends: left running to the session's end,
    the bots with 1 s check intervals kept a 2-core CI machine busy under every later test."""
    first = len(MADE_BOTS)
    yield
    _stop_made_since(first)


@pytest.fixture(autouse=True)
def _made_bots_end_with_their_test():
    """A bot a test made for itself stops when the test ends (its module's fixtures are set up before
    this, so their bots live on for the module's other tests)."""
    first = len(MADE_BOTS)
    yield
    _stop_made_since(first)


# The test files that took longest (pytest --durations, 2026-12-02), longest first. The suite runs them
# first so that no long file starts when the others are nearly done (xdist hands out whole files, by
# default the ones with the most tests first: these have few). Only the order depends on this list.
LONGEST_FIRST = ["test_devstack", "test_trust_recovery", "test_sync_gaps", "test_state_rollback", "test_cloud_chat",
                 "test_backup_chat", "test_channel", "test_state_damage", "test_fleet", "test_outbox_delivery",
                 "test_deploy", "test_cannot_write_chat", "test_quiet_hours_chat", "test_approvals",
                 "test_upgrade_chat", "test_disk_chat", "test_backups", "test_fleet_federation",
                 "test_outofband_chat", "test_restic_adapter", "test_session_expiry", "test_room_keys"]


def pytest_collection_modifyitems(items):
    """The long files first, then the other chat tests, the quick unit tests last (deploy/test runs
    xdist with --no-loadscope-reorder, which keeps this order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def order(item) -> tuple[int, int]:
        return (rank.get(item.path.stem, len(rank)), item.path.parent.name == "unit")
    items.sort(key=order)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under a failed test, the end of the log of each bot that wrote during it: CI shows only what
    pytest prints, and a timeout alone does not say what the bot was doing."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for bot in BOTS:
        path = bot.process.log_path
        if path.exists() and path.stat().st_mtime >= call.start:
            tail = path.read_text(errors="replace").splitlines()[-LOG_TAIL:]
            report.sections.append((f"log of bot {bot.user_id} (last {LOG_TAIL} lines)", "\n".join(tail)))


@dataclass
class Person:
    name: str
    user_id: str
    password: str = PASSWORD


class TestBot:
    """The bot under test as a real process; restartable with the same state directory."""
    __test__ = False           # a helper, not a test class for pytest to collect

    def __init__(self, synapse: Synapse, directory: Path, room_id: str, admins: list[str],
                 user_id: str, extra: str = ""):
        self.synapse = synapse
        self.dir = directory
        self.room_id = room_id
        self.user_id = user_id
        self.state_dir = directory / "state"
        password_file = directory / "bot.password"
        password_file.write_text(BOT_PASSWORD + "\n")
        password_file.chmod(0o600)
        self.config_path = write_bot_config(
            directory / "bot.toml", homeserver=synapse.url, user_id=user_id,
            password_file=password_file, admins=admins, rooms=[room_id], state_dir=self.state_dir,
            extra=TEST_BOT_SETTINGS + extra + TEST_BOT_TABLES + _quiet_schedules(extra))
        self.process = BotProcess(self.config_path, directory / "bot.log", cwd=ROOT)
        BOTS.append(self)

    def start(self) -> None:
        self.process.start()

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        return self.process.stop(sig)

    def kill(self) -> None:
        """SIGKILL, as the OOM killer would; then to the programs it had running (a hanging stand-in),
        which a real kill would leave to finish."""
        children = psutil.Process(self.process.running_pid()).children(recursive=True)
        self.stop(signal.SIGKILL)
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass

    def log(self) -> str:
        return self.process.log_text()

    def marks(self) -> list[str]:
        path = self.state_dir / "marks.txt"
        return path.read_text().split() if path.exists() else []


def admin_room_on(server: Synapse, bot_name: str, title: str) -> tuple[str, str, str]:
    """On a homeserver of a test's own: alice, a bot account and an encrypted room of theirs (alice's user
    id, the bot's, the room's)."""
    alice = server.register("alice", PASSWORD)
    bot_user = server.register(bot_name, BOT_PASSWORD, admin=True)
    owner = PlainSession.login(server.url, alice, PASSWORD)
    room = owner.create_encrypted_room(title, [bot_user])
    owner.logout()
    return alice, bot_user, room


@pytest.fixture(scope="session")
def synapse(tmp_path_factory) -> Synapse:
    server = Synapse(tmp_path_factory.mktemp("synapse"), free_port())
    server.configure()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def people(synapse) -> dict[str, Person]:
    found = {}
    for name, admin in [("alice", False), ("bob", False), ("carol", False), ("dave", False),
                        ("erin", False)]:
        found[name] = Person(name, synapse.register(name, PASSWORD, admin=admin))
    found["spbot"] = Person("spbot", synapse.register("spbot", BOT_PASSWORD, admin=True), BOT_PASSWORD)
    return found


@pytest.fixture(scope="session")
def room_id(synapse, people) -> str:
    owner = PlainSession.login(synapse.url, people["alice"].user_id, PASSWORD)
    room = owner.create_encrypted_room("Server admin (tests)", [
        people["bob"].user_id, people["carol"].user_id, people["erin"].user_id, people["spbot"].user_id])
    for name in ("bob", "carol", "erin"):
        member = PlainSession.login(synapse.url, people[name].user_id, PASSWORD)
        member.join(room)
        member.logout()
    owner.logout()
    return room


def reply_log(tmp_path_factory) -> Path:
    """Where alice's client records the bots' formatted replies (tests/test_phone_width.py renders them);
    SPBOT_REPLY_LOG names a file to keep (check it with `python -m tests.phone_width FILE`)."""
    chosen = os.environ.get("SPBOT_REPLY_LOG")
    return Path(chosen) if chosen else tmp_path_factory.getbasetemp() / "replies.jsonl"


def _recorder(path: Path):
    def record(seen) -> None:
        content = seen.content.get("m.new_content") or seen.content
        if seen.type == "m.room.message" and seen.sender.startswith("@spbot") \
                and content.get("formatted_body"):
            with path.open("a") as out:
                out.write(json.dumps({"sender": seen.sender, "body": content.get("body", ""),
                                      "formatted_body": content["formatted_body"]}) + "\n")
    return record


def _session_client(name: str):
    """A session fixture: `name`'s real E2EE client, logged in once with its own device (alice's records
    the bots' replies, see reply_log)."""
    @pytest.fixture(scope="session", name=name)
    async def client_fixture(synapse, people, tmp_path_factory) -> ChatClient:
        person = people[name]
        client = ChatClient(synapse.url, person.user_id, person.password, tmp_path_factory.mktemp(name))
        if name == "alice":
            client.on_event = _recorder(reply_log(tmp_path_factory))
        await client.start()
        yield client
        await client.stop()
    return client_fixture


alice = _session_client("alice")
bob = _session_client("bob")
carol = _session_client("carol")
erin = _session_client("erin")


@pytest.fixture(scope="session")
async def bot(synapse, people, room_id, alice, bob, carol, erin, tmp_path_factory) -> TestBot:
    """The running bot, answering in the room; admins are alice, bob and erin, carol is family."""
    test_bot = TestBot(synapse, tmp_path_factory.mktemp("bot"), room_id,
                       [people[n].user_id for n in ("alice", "bob", "erin")], people["spbot"].user_id)
    test_bot.start()
    await alice.wait_joined(room_id, test_bot.user_id, timeout=60)
    await wait_answering(alice, test_bot)
    yield test_bot
    test_bot.stop()


async def wait_answering(client: ChatClient, test_bot: TestBot, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await client.command(test_bot.room_id, "!ping", test_bot.user_id, timeout=10)
            return
        except asyncio.TimeoutError:
            if test_bot.process.running_pid() is None:
                raise RuntimeError("the bot stopped:\n" + test_bot.log()[-2000:])
            if asyncio.get_running_loop().time() > deadline:
                raise


@pytest.fixture(scope="session")
def dev_json(synapse, people, room_id, bot, tmp_path_factory) -> Path:
    """A dev.json like deploy/synapse-dev/up writes, for the test session's homeserver."""
    path = tmp_path_factory.mktemp("devstate") / "dev.json"
    path.write_text(json.dumps({
        "homeserver": synapse.url, "server_name": synapse.server_name,
        "bot_user_id": people["spbot"].user_id, "room_id": room_id,
        "users": [{"user_id": people[n].user_id, "password": PASSWORD, "admin": n in ("alice", "bob")}
                  for n in ("alice", "bob", "carol")]}))
    return path


@pytest.fixture(scope="session")
def make_bot(synapse, people, alice, bob, carol, erin, tmp_path_factory):
    """Start another bot with its own account, encrypted room (alice, bob, erin admins; carol family),
    config additions and environment, e.g. a fakebin PATH:

        bot = await make_bot("backups", extra='[backup]\\nrepository = "..."', env=bins.env())
    Top-level keys go in `extra` before any [table]. Stopped at the end of the test or module that made it."""

    async def make(name: str, extra: str = "", env: dict | None = None, admins: list[str] | None = None,
                   members: list[str] = ()) -> TestBot:
        """`admins` replaces alice/bob/erin as the bot's admins; `members` (user ids with the password
        PASSWORD) are invited and joined too."""
        localpart = f"spbot-{name}"
        user_id = synapse.register(localpart, BOT_PASSWORD, admin=True)
        owner_id = admins[0] if admins else people["alice"].user_id     # the bot joins on an admin's invite
        family = [people[n].user_id for n in ("alice", "bob", "carol", "erin")]
        joiners = [u for u in family + list(members) if u != owner_id]
        owner = PlainSession.login(synapse.url, owner_id, PASSWORD)
        room = owner.create_encrypted_room(f"Server admin ({name})", joiners + [user_id])
        owner.logout()
        for member in joiners:
            session = PlainSession.login(synapse.url, member, PASSWORD)
            session.join(room)
            session.logout()
        directory = tmp_path_factory.mktemp(f"bot-{name}")
        test_bot = TestBot(synapse, directory, room,
                           admins or [people[n].user_id for n in ("alice", "bob", "erin")], user_id,
                           extra=extra)
        if env is not None:
            test_bot.process.env = env
        test_bot.start()
        MADE_BOTS.append(test_bot)
        await alice.wait_joined(room, user_id, timeout=60)
        await wait_answering(alice, test_bot)
        return test_bot

    return make
