"""arm64 struct pt_regs (arch/arm64/include/asm/ptrace.h).

The uapi part (struct user_pt_regs: x0-x30, sp, pc, pstate) comes first,
then orig_x0 at 0x110 and the s32 syscallno at 0x118; 336 bytes in all in
6.1 and 6.12 (sdei_ttbr1, pmr_save, stackframe[2], lockdep_hardirqs,
exit_rcu follow).  kernel_entry (arch/arm64/kernel/entry.S) stores
syscallno = NO_SYSCALL (-1); el0_svc_common() (arch/arm64/kernel/syscall.c)
then stores orig_x0 = x0 and syscallno = the number, and invoke_syscall()
overwrites x0 with the return value.
"""
from __future__ import annotations

import struct
from typing import Dict, Tuple

from gdbext.decoders.bits import as_bytes, to_signed

GPR_NAMES: Tuple[str, ...] = tuple(f"x{i}" for i in range(31))
PT_REGS_FIELDS: Tuple[str, ...] = GPR_NAMES + ("sp", "pc", "pstate", "orig_x0", "syscallno")
PT_REGS_OFFSETS: Dict[str, int] = {name: 8 * i for i, name in enumerate(PT_REGS_FIELDS)}
PT_REGS_SIZE = 336
NO_SYSCALL = -1

# PSTATE / SPSR (Arm ARM D1.2.2, C5.2.19): M[4] set = AArch32; M[3:2] = EL.
PSR_MODE32_BIT = 1 << 4
PSR_MODE_MASK = 0xF          # M[3:0]: 0 = EL0t (AArch64), USR (AArch32)


def pstate_el(pstate: int) -> int:
    """The exception level a PSTATE/SPSR value names (0 for AArch32 user)."""
    if pstate & PSR_MODE32_BIT:
        return 0 if pstate & PSR_MODE_MASK == 0 else 1
    return (pstate >> 2) & 3


def pstate_mode(pstate: int) -> str:
    """"64" or "32" for a user-mode PSTATE, else "kernel"."""
    if pstate_el(pstate) != 0:
        return "kernel"
    return "32" if pstate & PSR_MODE32_BIT else "64"


class Arm64PtRegs:
    """One attribute per pt_regs member; syscallno is signed."""

    __slots__ = PT_REGS_FIELDS

    def __init__(self, values: Dict[str, int]):
        for name in PT_REGS_FIELDS:
            setattr(self, name, values[name])

    def to_dict(self) -> Dict[str, int]:
        return {name: getattr(self, name) for name in PT_REGS_FIELDS}

    @property
    def mode(self) -> str:
        return pstate_mode(self.pstate)

    @property
    def is_syscall(self) -> bool:
        return self.syscallno != NO_SYSCALL


def decode_pt_regs(raw) -> Arm64PtRegs:
    data = as_bytes(raw, PT_REGS_OFFSETS["syscallno"] + 4, "arm64 pt_regs")
    words = struct.unpack_from("<35Q", data, 0)
    values = dict(zip(PT_REGS_FIELDS[:35], words))
    values["syscallno"] = to_signed(struct.unpack_from("<I", data, PT_REGS_OFFSETS["syscallno"])[0], 32)
    return Arm64PtRegs(values)


def encode_pt_regs(values: Dict[str, int]) -> bytes:
    """pt_regs bytes with `values` (others zero): the inverse of
    decode_pt_regs, for fixtures."""
    out = bytearray(PT_REGS_SIZE)
    for name in PT_REGS_FIELDS[:35]:
        struct.pack_into("<Q", out, PT_REGS_OFFSETS[name], values.get(name, 0))
    struct.pack_into("<i", out, PT_REGS_OFFSETS["syscallno"], values.get("syscallno", NO_SYSCALL))
    return bytes(out)
