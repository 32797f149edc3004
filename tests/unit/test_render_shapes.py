"""The reply shapes a phone can show: narrow tables, lists of short lines, cuts that end in "…", and
!disk on a large machine summarised (the rest behind --all)."""
import pytest

from spbot.features.disk import DiskSettings
from spbot.features.disk.render import SHOWN_ATTENTION, overview_reply
from spbot.render import Item, clip, items, quote_user_text, table
from spbot.system.disks import MountUsage

GiB = 1024 ** 3


def test_table_is_narrow_and_its_plain_text_one_row_per_line():
    reply = table(["snapshot", "size"], [["ab12cd34", "1.2 GiB"], ["ef56", ""]], title="Snapshots")
    assert reply.body == "Snapshots\nab12cd34 · 1.2 GiB\nef56"
    assert "<th>snapshot</th>" in reply.html and "<td>ab12cd34</td><td>1.2 GiB</td>" in reply.html
    with pytest.raises(ValueError, match="5 columns does not fit a phone"):
        table(list("abcde"), [])


def test_items_are_one_line_each_with_an_optional_note():
    reply = items("Jobs", [Item("#2 backup", ["✅ done", "", "1m"], quote_user_text("x" * 50, limit=10)),
                           Item("#1 <ping>")], more="… and 3 more")
    assert reply.body.splitlines() == ["Jobs", "#2 backup — ✅ done · 1m", "   `xxxxxxxxxx…`", "#1 <ping>",
                                       "… and 3 more"]
    assert reply.html == ("<b>Jobs</b><ul><li><b>#2 backup</b> — ✅ done · 1m<br><code>xxxxxxxxxx…</code></li>"
                          "<li><b>#1 &lt;ping&gt;</b></li></ul>… and 3 more")


def test_clip_ends_in_an_ellipsis():
    assert clip("short", 10) == "short"
    assert clip("a long sentence here", 10) == "a long se…" and len(clip("x" * 99, 10)) == 10


def usage(mount: str, percent: float) -> MountUsage:
    used = int(100 * GiB * percent / 100)
    return MountUsage(mountpoint=mount, device="/dev/x", total=100 * GiB, used=used, free=100 * GiB - used,
                      percent=percent)


def test_many_filesystems_show_those_that_need_attention_and_summarise_the_rest():
    usages = [usage(f"/srv/s{i:03d}", 30 + i % 40) for i in range(100)]
    usages += [usage(f"/full{i:02d}", 96) for i in range(12)] + [MountUsage(mountpoint="/nfs", available=False,
                                                                           error="did not answer")]
    reply = overview_reply(usages, {}, DiskSettings(), 0.0)
    lines = reply.body.splitlines()
    assert lines[0].endswith("(113 filesystems): 13 need attention")
    assert [line.split(" — ")[0] for line in lines[1:1 + SHOWN_ATTENTION]] == \
        ["/nfs"] + [f"/full{i:02d}" for i in range(SHOWN_ATTENTION - 1)]   # unanswered, then fullest; ten
    assert "… and 3 more that need attention." in lines
    assert "100 filesystems fine: below their warning level and not filling up (fullest /srv/s039 at 69%)." in lines
    assert "!disk --all lists every one." in lines and len(lines) <= 16
    every = overview_reply(usages, {}, DiskSettings(), 0.0, show_all=True).body.splitlines()
    assert len([line for line in every if " — " in line]) == 113 and "/nfs — ⚠️ no answer · did not answer" in every


def test_a_few_filesystems_are_all_listed():
    reply = overview_reply([usage("/", 40), usage("/srv", 90)], {}, DiskSettings(), 0.0)
    assert reply.body.splitlines()[1:] == [
        "/ — ███░░░░░ 40% · 60.0 GiB free of 100.0 GiB · collecting data",
        "/srv — ███████░ 90% · 10.0 GiB free of 100.0 GiB · collecting data",
        "⚠️ /srv is filling up: !disk /srv, then !cleanup"]
