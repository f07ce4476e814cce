"""kx seccomp, kx event's seccomp verdict and kx task's credentials against
the lab's own programs (scripts/guest/kxsec.c):

- /bin/kxseccomp installs two filters (the bytes of
  tests/unit/test_decoders_seccomp.py), makes the filtered calls and prints
  KX-SECCOMP with what the kernel returned and the verdicts to expect, then
  calls getppid(0x5ecc);
- /bin/kxcreds sets ids, groups and capabilities, reads them back with
  getresuid/getresgid/getgroups/capget/prctl and prints KX-CREDS, then
  calls getpgid(0x5ecc).
"""
import re

import pytest

from tests import kernel_source
from tests.unit.test_decoders_seccomp import NEWER, OLDER

STOP_MARK = 0x5ECC
NR_GETPPID, NR_GETPGID = 110, 121


def kx_line(kx, tag, pid=None, part=0):
    """The words `key=value` of the last `tag` line (of `pid`); KX-SECCOMP's
    line has what the kernel returned (part 0) and, after "expect", the
    verdicts (part 1).  Only whole lines: the guest may be stopped while
    its UART is still sending the newest one."""
    lines = re.findall(rf"{tag} pid=(\d+) (.*)\n", kx.guest.serial())
    assert lines, f"no {tag} line on the serial console"
    rest = next((r for found, r in reversed(lines) if pid is None or int(found) == pid), lines[-1][1])
    words = rest.split(" expect ")[part].split()
    return dict(w.split("=", 1) for w in words if "=" in w)


def stop_at_mark(kx, nr):
    """At entry_SYSCALL_64 for syscall `nr` called with STOP_MARK."""
    kx.run_to("entry_SYSCALL_64", condition=f"$rax == {nr} && $rdi == {STOP_MARK}")
    return kx


@pytest.fixture
def at_seccomp(kx):
    return stop_at_mark(kx, NR_GETPPID)


@pytest.fixture
def at_creds(kx):
    return stop_at_mark(kx, NR_GETPGID)


def test_filters_are_the_installed_bytes(at_seccomp):
    kx = at_seccomp
    d = kx.json("kx seccomp")
    assert d["task"]["comm"] == "kxseccomp" and d["mode"] == "filter" and d["mode_value"] == 2
    assert d["filter_count"] == 2 and len(d["filters"]) == 2 and d["warnings"] == []
    newest, older = d["filters"]
    as_bytes = [b"".join(i["code"].to_bytes(2, "little") + bytes((i["jt"], i["jf"])) + i["k"].to_bytes(4, "little")
                         for i in f["insns"]) for f in (newest, older)]
    assert as_bytes == [NEWER, OLDER]
    assert [i["text"] for i in older["insns"]][:4] == [
        "A = arch", "if (A != AUDIT_ARCH_X86_64) goto 0007", "A = nr", "if (A == getppid) goto 0006"]
    # the kernel's own words, read by gdb at a stop where it can dereference
    text = kx.cmd("kx seccomp")
    assert "return ERRNO(13) EACCES" in text and "filter 1" in text


@pytest.mark.parametrize("call, key", [
    ("getppid", "getppid"), ("write 99", "write99"), ("write 1", "write1"), ("getuid", "getuid"),
    ("uname", "uname"), ("getpid", "getpid"), ("20 --abi 32", "i386"),
])
def test_eval_gives_the_expected_verdicts(at_seccomp, call, key):
    kx = at_seccomp
    expected = kx_line(kx, "KX-SECCOMP", part=1)
    d = kx.json(f"kx seccomp --eval {call}")["eval"]
    want = expected[key]
    action = want.split("(")[0]
    assert d["action"] == action
    if "(" in want:
        assert d["data"] == int(want.split("(")[1].rstrip(")"))
    if key == "getppid":
        # a tie between ERRNO(13) (newest) and ERRNO(1): the newest wins
        assert d["filter"] == 0 and [r["action"] for r in d["results"]] == ["ERRNO", "ERRNO"]


def test_the_kernel_returned_what_eval_says(at_seccomp):
    kx = at_seccomp
    seen = kx_line(kx, "KX-SECCOMP")
    for call, key in (("getppid", "getppid"), ("write 99", "write99")):
        d = kx.json(f"kx seccomp --eval {call}")["eval"]
        assert int(seen[key]) == -d["data"]


def test_event_at_the_entry_runs_the_filters(at_seccomp):
    kx = at_seccomp
    d = kx.json("kx event")
    assert d["comm"] == "kxseccomp" and d["name"] == "getppid" and d["source"] == "registers"
    s = d["seccomp"]
    assert (s["mode"], s["filters"], s["action"], s["data"], s["filter"]) == ("filter", 2, "ERRNO", 13, 0)
    assert s["args"][0] == STOP_MARK and s["instruction_pointer"] == d["return_ip"]
    assert "returns -13 (EACCES)" in kx.cmd("kx event")
    t = kx.json("kx task")
    assert t["seccomp"] == {"mode": "filter", "mode_value": 2, "filters": 2}
    # Up to 5.10 the entry code's seccomp work is TIF_SECCOMP in
    # thread_info.flags; "entry: Move SECCOMP to SYSCALL_WORK" (5.11) moved it.
    bit = kernel_source.tif_bit(kx.config.kernel, "TIF_SECCOMP")
    if bit is None:
        assert "SYSCALL_WORK_SECCOMP" in t["syscall_work"]["names"]
    else:
        assert t["syscall_work"] is None and t["ti_flags"]["value"] >> bit & 1
        assert {"TIF_SECCOMP", f"bit{bit}"} & set(t["ti_flags"]["names"])   # unnamed at worst, never misnamed


def test_event_without_seccomp_says_nothing(kx):
    kx.run_to("ksys_write")
    d = kx.json("kx event")
    assert d["seccomp"] is None
    assert kx.json("kx task 1")["seccomp"]["mode"] == "disabled"


def test_task_credentials(at_creds):
    kx = at_creds
    t = kx.json("kx task")
    assert t["comm"] == "kxcreds"
    want = kx_line(kx, "KX-CREDS", t["pid"])
    c = t["creds"]
    for key in ("uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid"):
        assert c[key] == int(want[key]), key
    assert c["groups"]["count"] == int(want["groups"]) == 3 and c["groups"]["gids"] == [10, 20, 30]
    for key, name in (("effective", "cap_eff"), ("permitted", "cap_prm"), ("inheritable", "cap_inh"),
                      ("bounding", "cap_bnd"), ("ambient", "cap_amb")):
        assert c["caps"][key]["value"] == int(want[name], 16), key
    assert c["caps"]["effective"]["names"] == ["CAP_KILL", "CAP_NET_RAW"]
    assert c["caps"]["bounding"]["missing"] == ["CAP_SYS_MODULE"]
    assert c["last_cap"] == 40 and not c["overridden"]
    assert c["cred"] == int(kx.cmd("output/x (unsigned long)$kx_task_struct().cred").split()[-1], 16)
    text = kx.cmd("kx task")
    assert "CapBnd" in text and "all but CAP_SYS_MODULE" in text and "euid 1002" in text


def test_root_and_kernel_thread_credentials(kx):
    kx.run_to("ksys_write")
    init = kx.json("kx task 1")["creds"]
    assert (init["uid"], init["euid"], init["groups"]["count"]) == (0, 0, 0)
    assert init["caps"]["effective"]["all"] and init["caps"]["bounding"]["all"]
    assert kx.json("kx task 2")["creds"]["caps"]["effective"]["all"]


@pytest.mark.parametrize("command, message", [
    ("kx seccomp --eval nosuchcall", "unknown syscall 'nosuchcall'"),
    ("kx seccomp --eval 1 2 3 4 5 6 7 8", "at most six arguments"),
    ("kx seccomp --eval write zz", "not a number"),
    ("kx seccomp --ip 4", "go with --eval"),
    ("kx seccomp --eval 1 --abi 7", "--abi must be"),
    ("kx seccomp 99999", "no task with pid 99999"),
])
def test_bad_input_is_one_line(kx, command, message):
    kx.run_to("ksys_write")
    assert message in kx.json(command)["error"]
    out = kx.gdb.cmd_full(command)
    assert out["error"] and message in out["error"] and "\n" not in out["error"].strip()
    assert "Traceback" not in out["output"] + out["log"] + out["error"]
