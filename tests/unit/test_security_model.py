"""The seccomp and credentials model (kernel/seccomp.py, kernel/creds.py)
on the fake target: task->seccomp's filter chain with its classic
programs, the chain's verdict, strict mode, and task->cred."""
import struct

import pytest

from gdbext import errors
from gdbext.arch.x86_64 import X86
from gdbext.decoders import seccomp as sdec
from gdbext.kernel import backend, creds, seccomp
from gdbext.kernel.fake import FakeTarget
from tests.unit.test_decoders_seccomp import NEWER, OLDER

TASK = 0xFFFF888004000000
F_NEW, F_OLD = 0xFFFF888005000000, 0xFFFF888005001000
PROG_NEW, PROG_OLD = 0xFFFF888005002000, 0xFFFF888005003000
FPROG_NEW, FPROG_OLD = 0xFFFF888005004000, 0xFFFF888005005000
INSNS_NEW, INSNS_OLD = 0xFFFF888005006000, 0xFFFF888005007000
CRED, GROUPS = 0xFFFF888005008000, 0xFFFF888005009000
CAP_LAST_CAP = 0xFFFFFFFF8201FB84

TYPES = {
    "struct task_struct": (4096, {"seccomp.mode": (0xC70, 4), "seccomp.filter_count.counter": (0xC74, 4),
                                  "seccomp.filter": (0xC78, 8), "cred": (0xB90, 8), "real_cred": (0xB88, 8)}),
    # offsets of 6.1/6.12 (ptype/o)
    "struct seccomp_filter": (224, {"log": (8, 1), "prev": (144, 8), "prog": (152, 8)}),
    "struct bpf_prog": (72, {"len": (12, 4), "orig_prog": (64, 8)}),
    "struct sock_fprog_kern": (16, {"len": (0, 2), "filter": (8, 8)}),
    "struct cred": (184, {f"{k}.val": (4 + 4 * i, 4) for i, k in enumerate(
        ("uid", "gid", "suid", "sgid", "euid", "egid", "fsuid", "fsgid"))} | {
        "securebits": (36, 4), "cap_inheritable": (40, 8), "cap_permitted": (48, 8), "cap_effective": (56, 8),
        "cap_bset": (64, 8), "cap_ambient": (72, 8), "group_info": (144, 8)}),
    "struct group_info": (8, {"ngroups": (4, 4), "gid": (8, 0)}),
}


def u64(v):
    return struct.pack("<Q", v)


def task_bytes(mode, count, first):
    raw = bytearray(4096)
    struct.pack_into("<iiQ", raw, 0xC70, mode, count, first)
    struct.pack_into("<QQ", raw, 0xB88, CRED, CRED)
    return bytes(raw)


def filter_bytes(prev, prog, log=0):
    raw = bytearray(224)
    raw[8] = log
    struct.pack_into("<QQ", raw, 144, prev, prog)
    return bytes(raw)


def prog_bytes(orig, n):
    raw = bytearray(72)
    struct.pack_into("<I", raw, 12, n)
    struct.pack_into("<Q", raw, 64, orig)
    return bytes(raw)


def cred_bytes():
    raw = bytearray(184)
    struct.pack_into("<8I", raw, 4, 1001, 2001, 1003, 2003, 1002, 2002, 1003, 2003)
    struct.pack_into("<5Q", raw, 40, 0x1, 0x2021, 0x2020, 0x1FFFFFEFFFF, 0x1)
    struct.pack_into("<Q", raw, 144, GROUPS)
    return bytes(raw)


def target(mode=2, orig_new=FPROG_NEW):
    memory = {
        TASK: task_bytes(mode, 2 if mode == 2 else 0, F_NEW if mode == 2 else 0),
        F_NEW: filter_bytes(F_OLD, PROG_NEW, 1), F_OLD: filter_bytes(0, PROG_OLD),
        PROG_NEW: prog_bytes(orig_new, 30), PROG_OLD: prog_bytes(FPROG_OLD, 28),
        FPROG_NEW: struct.pack("<H6xQ", len(NEWER) // 8, INSNS_NEW),
        FPROG_OLD: struct.pack("<H6xQ", len(OLDER) // 8, INSNS_OLD),
        INSNS_NEW: NEWER, INSNS_OLD: OLDER,
        CRED: cred_bytes(), GROUPS: struct.pack("<ii3I", 1, 3, 10, 20, 30),
        CAP_LAST_CAP: struct.pack("<i", 40),
    }
    return FakeTarget(X86, {0: {}}, memory=memory, symbols={"cap_last_cap": CAP_LAST_CAP}, types=TYPES)


def test_the_filter_chain_newest_first():
    with backend.installed(target()):
        state = seccomp.task_seccomp(TASK)
    assert (state.mode, state.mode_name, state.filter_count, state.warnings) == (2, "filter", 2, [])
    assert [(f.index, f.address, f.log, f.bpf_len) for f in state.filters] == [
        (0, F_NEW, True, 30), (1, F_OLD, False, 28)]
    assert sdec.bpf.pack(state.filters[0].insns) == NEWER and sdec.bpf.pack(state.filters[1].insns) == OLDER


def test_evaluate_runs_the_chain_with_the_abi_arch():
    with backend.installed(target()):
        state = seccomp.task_seccomp(TASK)
        v = seccomp.evaluate(state, 110, "64", [], 0x401000, "getppid")
        assert (v.action, v.ret & 0xFFFF, v.result.winner, v.arch) == ("ERRNO", 13, 0, 0xC000003E)
        assert "returns -13" in v.text and v.to_dict()["results"][1]["action"] == "ERRNO"
        v32 = seccomp.evaluate(state, 20, "32", [], 0, "getpid")
        assert (v32.action, v32.arch, v32.result.winner) == ("KILL_PROCESS", 0x40000003, 1)


def test_a_filter_without_its_classic_program():
    with backend.installed(target(orig_new=0)):
        state = seccomp.task_seccomp(TASK)
        assert state.filters[0].insns is None and "orig_prog is NULL" in state.filters[0].note
        with pytest.raises(errors.NotSupported, match="filter 0 has no classic program"):
            seccomp.evaluate(state, 1, "64", [], 0)


def test_strict_and_disabled_modes():
    with backend.installed(target(mode=1)):
        state = seccomp.task_seccomp(TASK)
        assert state.mode_name == "strict" and state.filters == []
        assert seccomp.evaluate(state, 0, "64", [], 0, "read").action == "ALLOW"
        assert seccomp.evaluate(state, 39, "64", [], 0, "getpid").action == "KILL_THREAD"
        assert seccomp.evaluate(state, 119, "32", [], 0, "sigreturn").action == "ALLOW"
    with backend.installed(target(mode=0)):
        assert seccomp.evaluate(seccomp.task_seccomp(TASK), 39, "64", [], 0).action == "ALLOW"


def test_credentials():
    with backend.installed(target()):
        c = creds.task_creds(TASK)
    assert (c["uid"], c["euid"], c["suid"], c["fsuid"]) == (1001, 1002, 1003, 1003)
    assert (c["gid"], c["egid"], c["sgid"], c["fsgid"]) == (2001, 2002, 2003, 2003)
    assert c["groups"] == {"count": 3, "gids": [10, 20, 30], "truncated": False}
    assert c["last_cap"] == 40 and not c["overridden"]
    assert c["caps"]["effective"]["names"] == ["CAP_KILL", "CAP_NET_RAW"]
    assert c["caps"]["bounding"]["missing"] == ["CAP_SYS_MODULE"]
    assert c["caps"]["ambient"]["names"] == ["CAP_CHOWN"]
