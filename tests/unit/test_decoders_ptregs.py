"""gdbext.decoders.ptregs: struct pt_regs and the syscall ABI registers."""
import struct

import pytest

from gdbext.errors import DecodeError
from gdbext.decoders import ptregs
from gdbext.decoders.syscall_args import ENOSYS

MSG = 0x402000
LEN = 14
FIELDS = ["r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx",
          "dx", "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss"]

# The seed 64-bit hello at its write(1, msg, len) syscall: SYSCALL put the
# return RIP in rcx and RFLAGS in r11.
HELLO = dict(r15=0, r14=0, r13=0, r12=0, bp=0, bx=0, r11=0x246, r10=0, r9=0, r8=0,
             ax=1, cx=0x401017, dx=LEN, si=MSG, di=1, orig_ax=1, ip=0x401017, cs=0x33,
             flags=0x246, sp=0x7FFFFFFFEC80, ss=0x2B)
HELLO_BYTES = struct.pack("<21Q", *(HELLO[f] for f in FIELDS))


def test_layout_constants():
    assert ptregs.PT_REGS_SIZE == 168
    assert list(ptregs.PT_REGS_FIELDS) == FIELDS
    assert ptregs.PT_REGS_OFFSETS["orig_ax"] == 120 and ptregs.PT_REGS_OFFSETS["ss"] == 160


def test_decode_hello():
    r = ptregs.decode_pt_regs(HELLO_BYTES)
    assert r.to_dict() == HELLO
    assert list(r.to_dict()) == FIELDS
    assert r.mode == "64" and r.is_syscall
    assert (r.orig_ax, r.di, r.si, r.dx) == (1, 1, MSG, LEN)
    assert ptregs.encode_pt_regs(**HELLO) == HELLO_BYTES


def test_orig_ax_signed_and_enosys():
    raw = ptregs.encode_pt_regs(orig_ax=-1, ax=-ENOSYS, cs=0x10, ss=0x18)
    r = ptregs.decode_pt_regs(raw)
    assert r.orig_ax == -1 and not r.is_syscall
    assert r.ax == (1 << 64) - 38 and r.ax_signed == -38
    assert r.mode == "kernel"


def test_fred_bits_masked():
    # 6.12: cs/ss are unions with struct fred_cs / fred_ss; the selector is the low 16 bits.
    csx = 0x33 | (1 << 16)                                       # sl = 1
    ssx = 0x2B | (1 << 17) | (0x80 << 32) | (4 << 48) | (1 << 57) | (2 << 60)
    raw = ptregs.encode_pt_regs(cs=csx, ss=ssx)
    r = ptregs.decode_pt_regs(raw)
    assert r.cs == 0x33 and r.ss == 0x2B and r.csx == csx and r.ssx == ssx
    assert "csx" not in r.to_dict()
    assert r.fred_cs() == {"cs": 0x33, "sl": 1, "wfe": 0}
    f = r.fred_ss()
    assert (f["ss"], f["swevent"], f["vector"], f["type"], f["lm"], f["insnlen"]) == \
        (0x2B, 1, 0x80, 4, 1, 2)


def test_mode_from_cs():
    assert ptregs.mode_from_cs(0x33) == "64"
    assert ptregs.mode_from_cs(0x23) == "32"
    assert ptregs.mode_from_cs(0x10) == "kernel"
    assert ptregs.mode_from_cs(0x2B) == "unknown"
    assert ptregs.mode_from_cs(0x10033) == "64"


def test_truncated():
    with pytest.raises(DecodeError):
        ptregs.decode_pt_regs(HELLO_BYTES[:167])
    with pytest.raises(DecodeError):
        ptregs.encode_pt_regs(rax=1)
