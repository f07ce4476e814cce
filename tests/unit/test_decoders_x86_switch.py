"""The x86-64 dispatch-switch decoder (decoders/x86_switch.py) on
hand-assembled code: instruction forms, whole switches, condition codes
against the SDM's flag rules, the interval algebra."""
import struct

import pytest
from hypothesis import given, strategies as st

from gdbext import errors
from gdbext.decoders import x86_switch as X
from gdbext.decoders.x86insn import multibyte_nop_length
from tests.unit.syscall_fixtures import H, JE, MASK32, START, redirect, small_switch


# ---------------------------------------------------------------------------
# One instruction

@pytest.mark.parametrize("code,expected", [
    (b"\xf3\x0f\x1e\xfa", (4, "nop", None)),                          # endbr64
    (b"\x90", (1, "nop", None)),
    (b"\x0f\x1f\x44\x00\x00", (5, "nop", None)),                      # nopl 0x0(%rax,%rax,1)
    (b"\x66\x2e\x0f\x1f\x84\x00\x00\x00\x00\x00", (10, "nop", None)),  # cs nopw 0x0(%rax,%rax,1)
    (b"\x83\xfe\x02", (3, "cmp", (6, 2))),                            # cmp $2,%esi
    (b"\x83\xfe\xff", (3, "cmp", (6, MASK32))),                       # cmp $-1,%esi
    (b"\x81\xfe\x00\x01\x00\x00", (6, "cmp", (6, 0x100))),            # cmp $0x100,%esi
    (b"\x41\x83\xf8\x07", (4, "cmp", (8, 7))),                        # cmp $7,%r8d
    (b"\x3d\x10\x00\x00\x00", (5, "cmp", (0, 0x10))),                 # cmp $0x10,%eax
    (b"\x85\xf6", (2, "test", 6)),                                    # test %esi,%esi
    (b"\x74\x05", (2, "jcc", (0x4, 5))),                              # je .+5
    (b"\x0f\x87\x00\x01\x00\x00", (6, "jcc", (0x7, 0x100))),          # ja rel32
    (b"\xeb\xfe", (2, "jmp", -2)),
    (b"\xe9\x10\x00\x00\x00", (5, "jmp", 0x10)),
    (b"\xe8\xf0\xff\xff\xff", (5, "call", -0x10)),
    (b"\xc3", (1, "stop", 0xC3)),
    (b"\xcc", (1, "stop", 0xCC)),
])
def test_decode_insn(code, expected):
    assert X.decode_insn(code, 0) == expected


@pytest.mark.parametrize("code,needle", [
    (b"\x48\x83\xfe\x02", "64-bit"),               # cmp $2,%rsi
    (b"\x85\xfe", "unexpected instruction"),       # test %edi,%esi: two registers
    (b"\x41\x0f\x1f\x00", "unexpected instruction"),  # REX on a NOP
    (b"\x66\x66\x83\xfe\x02", "unexpected prefix"),
    (b"\xff\xe0", "unexpected instruction"),       # jmp *%rax
    (b"\x0f\x1f\xc8", "unexpected instruction"),   # 0f 1f /1 is not the NOP
    (b"\x0f\x87\x00", "past the end"),
])
def test_decode_insn_rejects(code, needle):
    with pytest.raises(errors.DecodeError, match=needle):
        X.decode_insn(code, 0)


def test_multibyte_nop_length():
    assert multibyte_nop_length(b"\x90\x0f\x1f\x00", 1) == 3
    assert multibyte_nop_length(b"\x0f\x1f\x80\x00\x00\x00\x00", 0) == 7
    assert multibyte_nop_length(b"\x0f\x1f\x80\x00", 0) is None        # disp32 cut short
    assert multibyte_nop_length(b"\x0f\x1f", 0) is None
    assert multibyte_nop_length(b"\x0f\x1e\xfa", 0) is None            # not 0f 1f


# ---------------------------------------------------------------------------
# Whole switches

@pytest.mark.parametrize("prologue", ["fentry", "nop5", None])
def test_decode_small_switch(prologue):
    sw = X.decode_switch(small_switch(prologue), START)
    assert [sw.target(n) for n in range(7)] == [H["read"], H["write"], H["open"], H["ni"], H["ni"],
                                                 H["exit"], H["ni"]]
    assert sw.target(MASK32) == sw.default == H["ni"]
    assert sw.nr_syscalls == 6
    assert sw.cases() == [sw.target(n) for n in range(6)]
    assert sw.cases(3) == [H["read"], H["write"], H["open"]]


def test_decode_short_jumps_and_signed_conditions():
    # cmp $10,%esi; jl L (signed: 0..9 and 0x80000000..); jmp ni; L: jmp read
    code = b"\x83\xfe\x0a" + b"\x7c\x05" + b"\xe9" + struct.pack("<i", H["ni"] - (START + 10)) \
        + b"\xe9" + struct.pack("<i", H["read"] - (START + 15))
    sw = X.decode_switch(code, START)
    assert sw.target(9) == H["read"] and sw.target(10) == H["ni"]
    assert sw.target(0x80000000) == H["read"]        # negative as a signed int
    assert sw.target(MASK32) == H["read"]


def test_decode_hooked_switch_entry():
    """An inline hook (jmp at the first byte) sends every nr elsewhere."""
    code = bytearray(small_switch())
    code[:5] = b"\xe9" + struct.pack("<i", H["hook"] - (START + 5))
    sw = X.decode_switch(bytes(code), START)
    assert {sw.target(n) for n in (0, 1, 5, MASK32)} == {H["hook"]}
    assert sw.nr_syscalls == 0


def test_decode_one_redirected_case():
    sw = X.decode_switch(redirect(small_switch(), H["open"], H["hook"]), START)
    assert sw.target(2) == H["hook"] and sw.target(1) == H["write"]


def test_decode_at_a_run_address():
    """The same bytes at another address: relative targets move with them."""
    slide = 0x2000000
    code = small_switch()
    sw = X.decode_switch(code, START + slide)
    assert sw.start == START + slide
    assert sw.target(0) == H["read"] + slide


def test_a_jump_inside_is_followed():
    # cmp $1,%esi; jmp L; ud2; L: jbe M; jmp ni; M: jmp read
    code = b"\x83\xfe\x01" + b"\xeb\x02" + b"\x0f\x0b" + b"\x76\x05" \
        + b"\xe9" + struct.pack("<i", H["ni"] - (START + 14)) \
        + b"\xe9" + struct.pack("<i", H["read"] - (START + 19))
    sw = X.decode_switch(code, START)
    assert sw.cases(3) == [H["read"], H["read"], H["ni"]]


def test_a_conditional_jump_out_of_the_function_is_not_a_case():
    """Cases end in jmp/call; a Jcc leaving the function is not followed."""
    code = b"\x83\xfe\x01\x0f\x86" + struct.pack("<i", H["read"] - (START + 9)) \
        + b"\xe9" + struct.pack("<i", H["ni"] - (START + 14))
    with pytest.raises(errors.DecodeError, match="fell off"):
        X.decode_switch(code, START)


@pytest.mark.parametrize("code,needle", [
    (b"\x83\xfe\x02\x74\x01\xc3\xe9\x00\x00\x00\x00", "ret"),                 # a path ending in ret
    (b"\x83\xfe\x02\x74\x01\xcc\xe9\x00\x00\x00\x00", "trap"),                # ... in int3
    (b"\x83\xfe\x02\xff\xe0", "unexpected instruction"),                       # jmp *%rax
    (b"\x83\xfe\x02\x74\x7f", "fell off"),                                     # jump past the end
    (b"\x74\x02\xe9\x00\x00\x00\x00", "no compare"),                           # jcc first
    (b"\x48\x83\xfe\x02", "64-bit"),                                           # cmp $2,%rsi
    (b"\x83\xfe\x02\x83\xff\x01\xe9\x00\x10\x00\x00", "two registers"),        # cmp esi, then edi
    (b"\x83\xfe\x02\x70\x01", "unsupported condition"),                        # jo
    (b"\x83\xfe", "past the end"),
    (b"\xeb\xfe", "step limit"),                                               # jmp . forever
])
def test_decode_rejects_what_it_does_not_know(code, needle):
    with pytest.raises(errors.DecodeError, match=needle):
        X.decode_switch(code, START, max_steps=1000)


def test_both_sides_of_a_branch_may_meet():
    # `je` to the next instruction: both paths reach one jmp, each with its
    # own values, and together they still cover every nr once.
    code = b"\x83\xfe\x02" + bytes([0x70 | JE, 0x00]) + b"\xe9" + struct.pack("<i", H["ni"] - (START + 10))
    sw = X.decode_switch(code, START)
    assert {sw.target(n) for n in (0, 2, MASK32)} == {H["ni"]}


# ---------------------------------------------------------------------------
# Condition codes and intervals

def _flags_hold(cc, a, b):
    """SDM Vol.1 Appendix B condition codes after `cmp b, a` (a - b)."""
    res = (a - b) & MASK32
    cf = a < b
    zf = res == 0
    sf = bool(res >> 31)
    of = bool(((a ^ b) & (a ^ res)) >> 31)
    return {0x2: cf, 0x3: not cf, 0x4: zf, 0x5: not zf, 0x6: cf or zf, 0x7: not cf and not zf,
            0xC: sf != of, 0xD: sf == of, 0xE: zf or sf != of, 0xF: not zf and sf == of}[cc]


def _member(intervals, v):
    return any(lo <= v <= hi for lo, hi in intervals)


@given(st.sampled_from([0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0xC, 0xD, 0xE, 0xF]),
       st.integers(0, MASK32), st.one_of(st.integers(0, MASK32), st.sampled_from([0, 1, 0x7FFFFFFF, 0x80000000, MASK32])))
def test_condition_sets_match_the_flags(cc, b, a):
    assert _member(X.condition_set(cc, ("cmp", b)), a) == _flags_hold(cc, a, b)
    # `test a,a` sets flags like `cmp $0,a` except OF/CF (both 0: same as cmp with 0).
    assert _member(X.condition_set(cc, ("test",)), a) == _flags_hold(cc, a, 0)


@given(st.integers(0, MASK32))
def test_sign_conditions_after_test(a):
    assert _member(X.condition_set(0x8, ("test",)), a) == bool(a >> 31)       # js
    assert _member(X.condition_set(0x9, ("test",)), a) == (not a >> 31)       # jns


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 50)), max_size=6),
       st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 50)), max_size=6))
def test_interval_algebra(xs, ys):
    def norm(pairs):
        vals = set()
        for lo, n in pairs:
            vals.update(range(lo, lo + n + 1))
        out = []
        for v in sorted(vals):
            if out and out[-1][1] == v - 1:
                out[-1] = (out[-1][0], v)
            else:
                out.append((v, v))
        return out, vals
    a, va = norm(xs)
    b, vb = norm(ys)
    inter = X.intersect(a, b)
    assert {v for lo, hi in inter for v in range(lo, hi + 1)} == va & vb
    comp = X.complement(a)
    assert all(not _member(comp, v) for v in va)
    assert all(_member(comp, v) for v in range(0, 1100) if v not in va)
    assert _member(comp, MASK32)
