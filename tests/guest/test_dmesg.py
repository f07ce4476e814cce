"""kx dmesg against the serial console (the kernel prints to ttyS0 with
loglevel=4): every line kx says the console prints is there, in the same
order and the same number; the records /init (scripts/guest/kxboot.c)
writes to /dev/kmsg at levels 3 and 6; --follow on a guest whose kxkmsg
child adds a record every 200 ms."""
import re
import time

import pytest

from gdbext.decoders import printk_ring
from tests.guest.conftest import OwnSession

KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d{6}\] .*$", re.M)


def console_lines(report):
    out = []
    for r in report["records"]:
        if r["console"] and r["state"] == "finalized":
            out += [f"{r['timestamp']} {line}" for line in r["text"].split("\n")]
    return out


def test_console_records_match_serial(kx):
    r = kx.json("kx dmesg")
    assert r["console_loglevel"] == 4 and r["total"] == len(r["records"]) > 100
    serial = KERNEL_LINE.findall(kx.guest.serial())
    mine = console_lines(r)
    assert mine == serial          # the same lines, the same count, the same order
    assert "[" in mine[0] and any("KX-KMSG err: kxboot" in line for line in mine)
    assert [x["seq"] for x in r["records"]] == sorted(x["seq"] for x in r["records"])
    assert r["records"][0]["text"].startswith("Linux version") or r["skipped"]["lost"] == 0


def test_kmsg_records_and_levels(kx):
    r = kx.json("kx dmesg")
    by_text = {x["text"]: x for x in r["records"]}
    err = by_text["KX-KMSG err: kxboot writes this record at level 3"]
    info = by_text["KX-KMSG info: kxboot writes this record at level 6"]
    two = by_text["KX-KMSG two lines: first\nKX-KMSG two lines: second"]
    assert (err["level"], info["level"], two["level"]) == (3, 6, 3)
    assert err["console"] and two["console"] and not info["console"]
    assert err["facility"] == 1                     # /dev/kmsg writes are LOG_USER
    assert "KX-KMSG info" not in kx.guest.serial()
    assert err["seq"] < info["seq"] < two["seq"]
    only = kx.json("kx dmesg --level console")["records"]
    assert {x["level"] for x in only} <= {0, 1, 2, 3}
    errs = kx.json("kx dmesg --level err")["records"]
    assert [x["seq"] for x in errs] == [x["seq"] for x in r["records"] if x["level"] <= 3]
    assert len(kx.json("kx dmesg --tail 3")["records"]) == 3
    text = kx.cmd("kx dmesg --level err")
    assert "<3>[" in text and "KX-KMSG two lines: second" in text


def test_dmesg_at_entry_under_kpti(kx):
    kx.run_to("entry_SYSCALL_64")     # user CR3: every read is a walk of the kernel's tables
    r = kx.json("kx dmesg --tail 5")
    assert len(r["records"]) == 5
    assert r["newest_seq"] == kx.json("kx dmesg")["newest_seq"]


def test_errors(kx):
    for command, needle in (("kx dmesg --level loud", "unknown log level"),
                            ("kx dmesg --tail -1", "--tail must be"),
                            ("kx dmesg --cpu 7", "no CPU 7")):
        assert needle in kx.json(command)["error"]


@pytest.fixture(scope="module")
def ticking(kernel_series):
    # A guest of its own whose kxkmsg child writes an info record every 200 ms.
    session = OwnSession(kernel_series, append="kxkmsg_ms=200")
    yield session
    session.close()


def test_follow_shows_only_newer_records(ticking):
    kx = ticking
    first = kx.json("kx dmesg")
    newest = first["newest_seq"]
    again = kx.json("kx dmesg --follow")
    assert again["records"] == [] and again["since_seq"] == newest
    kx.cont()
    time.sleep(1.5)
    kx.ensure_stopped()
    new = kx.json("kx dmesg --follow")
    assert new["since_seq"] == newest and new["records"]
    assert all(x["seq"] > newest for x in new["records"])
    assert [x["seq"] for x in new["records"]] == list(range(newest + 1, new["newest_seq"] + 1))
    assert any(re.fullmatch(r"KX-KMSG tick \d+", x["text"]) for x in new["records"])
    assert kx.json("kx dmesg --follow")["records"] == []
    text = kx.cmd("kx dmesg --follow")
    assert "no records after seq" in text
    assert printk_ring.parse_level("info") == 6
