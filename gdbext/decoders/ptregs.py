"""x86-64 struct pt_regs (arch/x86/include/asm/ptrace.h).

Same 21 x 8 = 168-byte layout in 6.1 and 6.12.  In 6.12 the cs and ss slots
are unions (u16 cs / u64 csx / struct fred_cs, and likewise for ss): with
FRED the CPU stores event information in the upper bits of those slots, so
the selector is only the low 16 bits.  We mask them and keep the raw slot.

On the SYSCALL path entry_SYSCALL_64 pushes ss=__USER_DS, sp (from the TSS
sp2 scratch slot), flags=r11, cs=__USER_CS, ip=rcx, orig_ax=rax and then
PUSH_AND_CLEAR_REGS with ax=-ENOSYS (arch/x86/entry/entry_64.S, both
versions); exception entries push orig_ax=-1 ("not a system call").
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, Tuple, Union

from gdbext.errors import DecodeError
from gdbext.decoders.bits import MASK64, Record, as_bytes, field, to_signed, to_unsigned
from gdbext.decoders.descriptors import KERNEL32_CS, KERNEL_CS, USER32_CS, USER_CS

PT_REGS_FIELDS: Tuple[str, ...] = (
    "r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8",
    "ax", "cx", "dx", "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss",
)
PT_REGS_SIZE = 8 * len(PT_REGS_FIELDS)  # 168
PT_REGS_OFFSETS: Dict[str, int] = {name: 8 * i for i, name in enumerate(PT_REGS_FIELDS)}


@dataclass
class PtRegs(Record):
    r15: int
    r14: int
    r13: int
    r12: int
    bp: int
    bx: int
    r11: int
    r10: int
    r9: int
    r8: int
    ax: int
    cx: int
    dx: int
    si: int
    di: int
    orig_ax: int      # signed: -1 = not a system call
    ip: int
    cs: int           # low 16 bits of the slot
    flags: int
    sp: int
    ss: int           # low 16 bits of the slot
    csx: int = 0      # whole 64-bit cs slot (FRED bits on 6.12)
    ssx: int = 0      # whole 64-bit ss slot

    def to_dict(self) -> Dict[str, int]:
        # Exactly the 21 pt_regs names; the raw cs/ss slots are attributes only.
        return {name: getattr(self, name) for name in PT_REGS_FIELDS}

    @property
    def ax_signed(self) -> int:
        return to_signed(self.ax, 64)

    @property
    def is_syscall(self) -> bool:
        return self.orig_ax >= 0

    @property
    def mode(self) -> str:
        return mode_from_cs(self.cs)

    def fred_cs(self) -> Dict[str, int]:
        return decode_fred_cs(self.csx)

    def fred_ss(self) -> Dict[str, int]:
        return decode_fred_ss(self.ssx)


def decode_pt_regs(raw: Union[bytes, bytearray, memoryview]) -> PtRegs:
    """Decode the first 168 bytes of `raw` as struct pt_regs."""
    data = as_bytes(raw, PT_REGS_SIZE, "pt_regs")
    vals = dict(zip(PT_REGS_FIELDS, struct.unpack_from("<21Q", data, 0)))
    csx, ssx = vals["cs"], vals["ss"]
    vals["cs"] = csx & 0xFFFF
    vals["ss"] = ssx & 0xFFFF
    vals["orig_ax"] = to_signed(vals["orig_ax"], 64)
    return PtRegs(csx=csx, ssx=ssx, **vals)


def encode_pt_regs(**regs: int) -> bytes:
    """168 bytes of pt_regs; missing registers are 0, negative values are
    stored two's-complement (orig_ax=-1)."""
    unknown = set(regs) - set(PT_REGS_FIELDS)
    if unknown:
        raise DecodeError(f"not pt_regs fields: {', '.join(sorted(unknown))}")
    return struct.pack("<21Q", *((regs.get(n, 0) & MASK64) for n in PT_REGS_FIELDS))


def decode_fred_cs(slot: int) -> Dict[str, int]:
    """struct fred_cs (6.12 asm/ptrace.h): cs:16, sl:2 (stack level), wfe:1."""
    slot = to_unsigned(slot, 64, "cs slot")
    return {"cs": field(slot, 0, 16), "sl": field(slot, 16, 2), "wfe": field(slot, 18, 1)}


def decode_fred_ss(slot: int) -> Dict[str, int]:
    """struct fred_ss (6.12 asm/ptrace.h)."""
    slot = to_unsigned(slot, 64, "ss slot")
    return {
        "ss": field(slot, 0, 16), "sti": field(slot, 16, 1), "swevent": field(slot, 17, 1),
        "nmi": field(slot, 18, 1), "vector": field(slot, 32, 8), "type": field(slot, 48, 4),
        "enclave": field(slot, 56, 1), "lm": field(slot, 57, 1), "nested": field(slot, 58, 1),
        "insnlen": field(slot, 60, 4),
    }


def mode_from_cs(cs: int) -> str:
    """"64" (USER_CS 0x33), "32" (USER32_CS 0x23), "kernel" (KERNEL_CS 0x10,
    or the boot-time KERNEL32_CS 0x08), else "unknown"."""
    cs = to_unsigned(cs, 64, "cs") & 0xFFFF
    if cs == USER_CS:
        return "64"
    if cs == USER32_CS:
        return "32"
    if cs in (KERNEL_CS, KERNEL32_CS):
        return "kernel"
    return "unknown"
