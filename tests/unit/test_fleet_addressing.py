"""Addressing in a room shared by several bots: `!on nas disk`, `!all disk`, `!nas disk`, unaddressed."""
from spbot.parsing import ALL, Address, Addressing, split_address
from spbot.commands import load_all
from spbot.registry import REGISTRY

HOSTS = ["nas", "vps", "disk"]


def test_on_all_and_short_forms():
    assert split_address("!on nas disk", "!", HOSTS) == Address("nas", "!disk", True)
    assert split_address("!on NAS backup now", "!", HOSTS) == Address("nas", "!backup now", True)
    assert split_address("!all disk", "!", HOSTS) == Address(ALL, "!disk", True)
    assert split_address("!nas disk", "!", HOSTS) == Address("nas", "!disk", True)
    assert split_address("!df", "!", HOSTS) == Address("", "!df")
    assert split_address("!on", "!", HOSTS) == Address("", "!on")


def test_short_form_never_shadows_a_command():
    """A host called like a command is reached with `!on disk …` only."""
    load_all()
    assert split_address("!disk", "!", HOSTS, REGISTRY) == Address("", "!disk")
    assert split_address("!on disk ping", "!", HOSTS, REGISTRY) == Address("disk", "!ping", True)


def test_who_answers_what():
    nas = Addressing("nas", {"vps": "@b:x", "box": "@c:x"}, "nas")
    vps = Addressing("vps", {"nas": "@a:x", "box": "@c:x"}, "nas")
    for bot, mine in ((nas, True), (vps, False)):
        assert bot.for_me(bot.split("!disk")) is mine                # unaddressed: the default only
        assert bot.for_me(bot.split("!all disk"))                    # everyone
        assert bot.for_me(bot.split("!on nas disk")) is mine
        assert bot.for_me(bot.split("!on elsewhere disk")) is mine   # the default says nobody has that name
        assert bot.for_me(bot.split("!fleet"))                       # fleet-wide
    assert not nas.known(nas.split("!on elsewhere disk"))


def test_default_is_first_host_and_a_silent_default_is_replaced():
    box = Addressing("box", {"vps": "@b:x", "nas": "@a:x"}, None)
    assert box.default == "box" and box.is_default()
    vps = Addressing("vps", {"nas": "@a:x", "box": "@c:x"}, "nas")
    vps.live = lambda: {"box", "vps"}                          # nas is silent
    assert vps.acting_default() == "box" and not vps.is_default()
    vps.live = lambda: {"vps"}
    assert vps.is_default()


def test_alone_everything_is_for_me():
    alone = Addressing("nas", {}, None)
    assert not alone.fleet
    assert alone.for_me(alone.split("!disk")) and alone.for_me(alone.split("!all disk"))
