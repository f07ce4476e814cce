"""i386 struct pt_regs and the 32-bit kernel's segment selectors.

pt_regs (arch/x86/include/asm/ptrace.h, CONFIG_X86_32, 6.1): 17 slots of 4
bytes, 68 in all, in the order SAVE_ALL pushes them (entry_32.S): bx cx dx
si di bp ax, then the data segments ds es fs gs (16-bit selectors, each in
a 4-byte slot with `__dsh` and friends), orig_ax, and the frame the CPU
pushed: ip cs flags sp ss.  The gs slot is `pushl $0` in 6.1 (the kernel
keeps user %gs lazily).

Selectors (arch/x86/include/asm/segment.h, CONFIG_X86_32): kernel CS and DS
are GDT entries 12 and 13, user CS and DS 14 and 15, the TSS 16, the LDT 17,
ESPFIX_SS 26 and the per-cpu segment 27 (%fs in the kernel); the TLS slots
are 6 to 8.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

from gdbext.decoders.bits import MASK32, Record, as_bytes, to_signed
from gdbext.errors import DecodeError

PT_REGS32_FIELDS: Tuple[str, ...] = (
    "bx", "cx", "dx", "si", "di", "bp", "ax", "ds", "es", "fs", "gs",
    "orig_ax", "ip", "cs", "flags", "sp", "ss",
)
PT_REGS32_SIZE = 4 * len(PT_REGS32_FIELDS)  # 68
PT_REGS32_OFFSETS: Dict[str, int] = {name: 4 * i for i, name in enumerate(PT_REGS32_FIELDS)}
_SEGMENT_SLOTS = ("ds", "es", "fs", "gs", "cs", "ss")

# GDT entries of a 32-bit kernel (asm/segment.h) and their selectors.
GDT32_ENTRIES: Dict[int, str] = {
    0: "NULL", 6: "TLS #1", 7: "TLS #2", 8: "TLS #3",
    12: "KERNEL_CS", 13: "KERNEL_DS", 14: "USER_CS", 15: "USER_DS", 16: "TSS", 17: "LDT",
    18: "PNPBIOS_CS32", 19: "PNPBIOS_CS16", 20: "PNPBIOS_DS", 21: "PNPBIOS_TS1", 22: "PNPBIOS_TS2",
    23: "APMBIOS_BASE", 24: "APMBIOS_CS_16", 25: "APMBIOS_DS",
    26: "ESPFIX_SS", 27: "KERNEL_PERCPU", 31: "DOUBLEFAULT_TSS",
}
KERNEL_CS32 = 12 * 8          # 0x60
KERNEL_DS32 = 13 * 8          # 0x68
USER_CS32 = 14 * 8 + 3        # 0x73
USER_DS32 = 15 * 8 + 3        # 0x7b
TSS_SEL32 = 16 * 8            # 0x80
ESPFIX_SS = 26 * 8            # 0xd0
KERNEL_PERCPU = 27 * 8        # 0xd8
GDT32_SIZE = 32               # GDT_ENTRIES


def selector32_name(selector: int) -> Optional[str]:
    """The GDT entry a selector names on a 32-bit kernel (RPL ignored;
    selectors with TI=1 point into an LDT: None)."""
    if selector & 4:
        return None
    return GDT32_ENTRIES.get(selector >> 3) if selector >> 3 or not selector & 3 else None


@dataclass
class PtRegs32(Record):
    bx: int
    cx: int
    dx: int
    si: int
    di: int
    bp: int
    ax: int
    ds: int
    es: int
    fs: int
    gs: int
    orig_ax: int      # signed: -1 = not a system call
    ip: int
    cs: int
    flags: int
    sp: int
    ss: int

    def to_dict(self) -> Dict[str, int]:
        return {name: getattr(self, name) for name in PT_REGS32_FIELDS}

    @property
    def ax_signed(self) -> int:
        return to_signed(self.ax, 32)

    @property
    def is_syscall(self) -> bool:
        return self.orig_ax >= 0

    @property
    def mode(self) -> str:
        return mode_from_cs32(self.cs)


def decode_pt_regs32(raw: Union[bytes, bytearray, memoryview]) -> PtRegs32:
    """The first 68 bytes of `raw` as an i386 struct pt_regs; selectors are
    the low 16 bits of their slots."""
    data = as_bytes(raw, PT_REGS32_SIZE, "pt_regs")
    vals = dict(zip(PT_REGS32_FIELDS, struct.unpack_from("<17I", data, 0)))
    for name in _SEGMENT_SLOTS:
        vals[name] &= 0xFFFF
    vals["orig_ax"] = to_signed(vals["orig_ax"], 32)
    return PtRegs32(**vals)


def encode_pt_regs32(**regs: int) -> bytes:
    """68 bytes of i386 pt_regs; missing registers are 0."""
    unknown = set(regs) - set(PT_REGS32_FIELDS)
    if unknown:
        raise DecodeError(f"not pt_regs fields: {', '.join(sorted(unknown))}")
    return struct.pack("<17I", *((regs.get(n, 0) & MASK32) for n in PT_REGS32_FIELDS))


def mode_from_cs32(cs: int) -> str:
    """"32" (USER_CS 0x73), "kernel" (KERNEL_CS 0x60), else "unknown"."""
    cs &= 0xFFFF
    if cs == USER_CS32:
        return "32"
    if cs == KERNEL_CS32:
        return "kernel"
    return "unknown"
