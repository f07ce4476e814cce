"""Classic BPF and seccomp: byte fixtures assembled by hand from the
encoding in include/uapi/linux/filter.h and bpf_common.h, the chain rule of
kernel/seccomp.c seccomp_run_filters(), and hypothesis for the rest."""
import pytest
from hypothesis import given, strategies as st

from gdbext import errors
from gdbext.decoders import bpf_classic as bpf
from gdbext.decoders import seccomp as sc
from gdbext.decoders.bpf_classic import Insn

X86_64, I386 = 0xC000003E, 0x40000003
NAMES = {0: "read", 1: "write", 39: "getpid", 63: "uname", 102: "getuid", 110: "getppid"}
ERRNOS = {1: "EPERM", 13: "EACCES", 95: "EOPNOTSUPP"}

# The two filters of the lab's /bin/kxseccomp (scripts/guest/kxsec.c), as bytes.
def asm(*insns):
    return bpf.pack([Insn(*i) for i in insns])


LD_W_ABS, JEQ_K, JGE_K, JSET_K, RET_K, RET_A = 0x20, 0x15, 0x35, 0x45, 0x06, 0x16
OLDER = asm((LD_W_ABS, 0, 0, 4), (JEQ_K, 0, 5, X86_64), (LD_W_ABS, 0, 0, 0),
            (JEQ_K, 2, 0, 110), (JEQ_K, 3, 0, 63), (RET_K, 0, 0, sc.RET_ALLOW),
            (RET_K, 0, 0, sc.RET_ERRNO | 1), (RET_K, 0, 0, sc.RET_KILL_PROCESS),
            (RET_K, 0, 0, sc.RET_KILL_PROCESS))
NEWER = asm((LD_W_ABS, 0, 0, 0), (JEQ_K, 4, 0, 110), (JEQ_K, 4, 0, 102), (JEQ_K, 0, 5, 1),
            (LD_W_ABS, 0, 0, 16), (JEQ_K, 2, 3, 99),
            (RET_K, 0, 0, sc.RET_ERRNO | 13), (RET_K, 0, 0, sc.RET_LOG),
            (RET_K, 0, 0, sc.RET_ERRNO | 95), (RET_K, 0, 0, sc.RET_ALLOW))


def data(nr, args=(), arch=X86_64, ip=0x401000):
    return sc.pack_data(nr, arch, ip, args)


def verdict(nr, args=(), arch=X86_64):
    chain = [bpf.parse(NEWER), bpf.parse(OLDER)]
    return sc.run_chain(chain, data(nr, args, arch))


def test_parse_and_pack_round_trip():
    prog = bpf.parse(OLDER)
    assert prog[0] == Insn(0x20, 0, 0, 4) and prog[1] == Insn(0x15, 0, 5, X86_64)
    assert bpf.pack(prog) == OLDER
    with pytest.raises(errors.DecodeError):
        bpf.parse(OLDER[:-1])


def test_seccomp_data_layout():
    d = sc.pack_data(0x101, X86_64, 0x1122334455667788, [1, 2, 3, 4, 5, 0xAABBCCDD00000006])
    assert len(d) == sc.SECCOMP_DATA_SIZE == 64
    assert d[0:4] == (0x101).to_bytes(4, "little") and d[4:8] == X86_64.to_bytes(4, "little")
    assert d[8:12] == (0x55667788).to_bytes(4, "little") and d[12:16] == (0x11223344).to_bytes(4, "little")
    assert d[56:60] == (6).to_bytes(4, "little") and d[60:64] == (0xAABBCCDD).to_bytes(4, "little")
    assert [sc.field_name(o) for o in (0, 4, 8, 12, 16, 20, 56, 60)] == [
        "nr", "arch", "instruction_pointer", "instruction_pointer >> 32", "args[0]", "args[0] >> 32",
        "args[5]", "args[5] >> 32"]
    assert sc.field_name(64) is None and sc.field_name(2) is None


def test_the_chain_picks_the_highest_precedence():
    # Both return ERRNO for getppid: a tie, and the newest filter (index 0) wins.
    r = verdict(110)
    assert (r.action, r.data, r.winner, r.results) == ("ERRNO", 13, 0, [sc.RET_ERRNO | 13, sc.RET_ERRNO | 1])
    # LOG (newer) beats ALLOW (older).
    assert (verdict(102).action, verdict(102).winner) == ("LOG", 0)
    # KILL_PROCESS (older) beats ALLOW (newer).
    assert (verdict(63).action, verdict(63).winner) == ("KILL_PROCESS", 1)
    # args[0] == 99 for write
    assert (verdict(1, [99]).action, verdict(1, [99]).data) == ("ERRNO", 95)
    assert verdict(1, [99 | 1 << 32]).action == "ERRNO"   # the filter only looks at the low half
    assert verdict(1, [1]).action == "ALLOW" and verdict(1, [1]).winner is None
    # The i386 ABI: the older filter kills it whatever the number.
    assert verdict(39, arch=I386).action == "KILL_PROCESS"
    assert verdict(39).action == "ALLOW"


def test_no_filters_allow():
    r = sc.run_chain([], data(39))
    assert (r.ret, r.action, r.winner) == (sc.RET_ALLOW, "ALLOW", None)


def test_disassembly_names_fields_syscalls_and_actions():
    lines = sc.disassemble(bpf.parse(OLDER), NAMES.get, ERRNOS.get)
    text = [ln.text for ln in lines]
    assert text == ["A = arch", "if (A != AUDIT_ARCH_X86_64) goto 0007", "A = nr",
                    "if (A == getppid) goto 0006", "if (A == uname) goto 0008", "return ALLOW",
                    "return ERRNO(1) EPERM", "return KILL_PROCESS", "return KILL_PROCESS"]
    newer = [ln.text for ln in sc.disassemble(bpf.parse(NEWER), NAMES.get, ERRNOS.get)]
    assert newer[3] == "if (A != write) goto 0009"
    assert newer[4:6] == ["A = args[0]", "if (A == 0x63) goto 0008 else goto 0009"]
    listing = sc.format_listing(lines)
    assert listing[2] == " 0000: 0x20 0x00 0x00 0x00000004  A = arch"
    assert lines[1].to_dict() == {"line": 1, "code": 0x15, "jt": 0, "jf": 5, "k": X86_64,
                                  "text": "if (A != AUDIT_ARCH_X86_64) goto 0007"}


def test_a_is_unknown_where_paths_disagree():
    # Two paths into 0004: one with A = nr, one with A = arch.
    prog = bpf.parse(asm((LD_W_ABS, 0, 0, 0), (JEQ_K, 0, 1, 5), (LD_W_ABS, 0, 0, 4),
                         (JEQ_K, 0, 0, 0), (JEQ_K, 0, 0, 39), (RET_K, 0, 0, sc.RET_ALLOW)))
    text = [ln.text for ln in sc.disassemble(prog, NAMES.get)]
    assert text[1] == "if (A != 0x5) goto 0003" and text[4] == "if (A != 0x27) goto 0005"


def test_alu_jumps_memory_and_return_a():
    prog = bpf.parse(asm((LD_W_ABS, 0, 0, 16), (0x54, 0, 0, 0xFF),     # A &= 0xff
                         (0x02, 0, 0, 3), (0x01, 0, 0, 2),              # mem[3] = A; X = 2
                         (0x2C, 0, 0, 0), (0x60, 0, 0, 3),              # A *= X; A = mem[3]
                         (JGE_K, 0, 1, 0x10), (0x04, 0, 0, sc.RET_ERRNO), (RET_A, 0, 0, 0)))
    # 0x1207 & 0xff = 7 < 0x10: return A (7); 0x20 >= 0x10: A += ERRNO, return A
    assert bpf.run(prog, data(0, [0x1207])) == 7
    assert bpf.run(prog, data(0, [0x20])) == sc.RET_ERRNO | 0x20
    assert [ln.text for ln in sc.disassemble(prog)][1:6] == [
        "A &= 0xff", "mem[3] = A", "X = 0x2", "A *= X", "A = mem[3]"]


def test_division_by_x_zero_returns_0():
    # bpf_convert_filter: `A /= X` with X == 0 makes the program return 0.
    prog = bpf.parse(asm((LD_W_ABS, 0, 0, 0), (0x3C, 0, 0, 0), (RET_K, 0, 0, sc.RET_ALLOW)))
    assert bpf.run(prog, data(5)) == sc.RET_KILL_THREAD


@pytest.mark.parametrize("prog, message", [
    ([], "1 to 4096"),
    ([(RET_K, 0, 0, 0)] * 4097, "1 to 4096"),
    ([(JEQ_K, 3, 0, 0), (RET_K, 0, 0, 0)], "jumps past the end"),
    ([(LD_W_ABS, 0, 0, 0)], "last instruction"),
    ([(0x34, 0, 0, 0), (RET_K, 0, 0, 0)], "divides by the constant 0"),
    ([(0x64, 0, 0, 32), (RET_K, 0, 0, 0)], "shifts by 32"),
    ([(0x02, 0, 0, 16), (RET_K, 0, 0, 0)], "M[16]"),
])
def test_check_refuses_what_the_kernel_refuses(prog, message):
    with pytest.raises(errors.DecodeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        bpf.check([Insn(*i) for i in prog])


def test_loads_outside_seccomp_data_are_refused():
    for k in (2, 64):
        with pytest.raises(errors.DecodeError):
            bpf.run(bpf.parse(asm((LD_W_ABS, 0, 0, k), (RET_A, 0, 0, 0))), data(0))
    with pytest.raises(errors.DecodeError):   # ld b[0]: not for seccomp
        bpf.run(bpf.parse(asm((0x30, 0, 0, 0), (RET_A, 0, 0, 0))), data(0))


def test_format_return():
    assert sc.format_return(sc.RET_ERRNO | 1, ERRNOS.get) == "ERRNO(1) EPERM"
    assert sc.format_return(sc.RET_TRACE | 0x2A) == "TRACE(0x2a)"
    assert sc.format_return(sc.RET_ALLOW) == "ALLOW" and sc.format_return(0) == "KILL_THREAD"
    assert "unknown action" in sc.format_return(0x12340000)
    assert sc.action_of(0x12340000).startswith("KILL_PROCESS")


ACTION_VALUES = sorted(sc.ACTIONS)
RETURNS = st.builds(lambda a, d: a | d, st.sampled_from(ACTION_VALUES), st.integers(0, 0xFFFF))


@given(st.lists(st.lists(RETURNS, min_size=1, max_size=6), max_size=5), st.integers(0, 7))
def test_chain_rule_against_a_precedence_list(tables, nr):
    """Filters that return table[nr % len]: the winner is the first filter
    whose action comes first in the documented precedence order."""
    order = ["KILL_PROCESS", "KILL_THREAD", "TRAP", "ERRNO", "USER_NOTIF", "TRACE", "LOG", "ALLOW"]
    filters = []
    for table in tables:
        insns = [(LD_W_ABS, 0, 0, 0)]
        for i, ret in enumerate(table):
            insns.append((JEQ_K, 0, 1, i))
            insns.append((RET_K, 0, 0, ret))
        insns.append((RET_K, 0, 0, table[0]))
        filters.append(bpf.parse(asm(*insns)))
    got = sc.run_chain(filters, data(nr))
    returns = [t[nr] if nr < len(t) else t[0] for t in tables]
    assert got.results == returns
    if not returns:
        assert got.ret == sc.RET_ALLOW
        return
    best = min(range(len(returns)), key=lambda i: (order.index(sc.action_of(returns[i])), i))
    if sc.action_of(returns[best]) == "ALLOW":
        assert got.action == "ALLOW"     # ALLOW never replaces the initial ALLOW
    else:
        assert (got.ret, got.winner) == (returns[best], best)


INSNS = st.builds(Insn, st.integers(0, 0xFFFF), st.integers(0, 255), st.integers(0, 255),
                  st.integers(0, 0xFFFFFFFF))


@given(st.lists(INSNS, min_size=1, max_size=30), st.binary(min_size=64, max_size=64))
def test_any_program_runs_or_is_refused(prog, blob):
    try:
        ret = bpf.run(prog, blob)
    except errors.DecodeError:
        return
    assert 0 <= ret <= 0xFFFFFFFF


@given(st.binary(max_size=256).map(lambda b: b[:len(b) - len(b) % 8]))
def test_disassembly_of_any_bytes(raw):
    lines = sc.disassemble(bpf.parse(raw), NAMES.get, ERRNOS.get)
    assert len(lines) == len(raw) // 8 and all(isinstance(ln.text, str) for ln in lines)
    assert len(sc.format_listing(lines)) == len(lines) + 2
