"""The few A64 instructions kx reads in the kernel's entry code: direct
calls (BL), the entry stub's register-saving STPs, and what the trace loop
can get past without a single-step.

Encodings from the Arm ARM (DDI 0487), C6.2: BL, B, STP (signed offset and
pre-index, 64-bit), NOP, BTI, ORR (shifted register, the MOV alias), ADD
(immediate, the MOV-to/from-SP alias), LDR (literal, 64-bit).  Instructions are 4 bytes, little
endian.
"""
from typing import Dict, List, Optional, Tuple

from gdbext.decoders.bits import MASK64
from gdbext.errors import DecodeError

INSN_SIZE = 4
NOP = 0xD503201F
# BTI {c, j, jc} (hint #34, #36, #38): no effect once the branch landed.
BTI = frozenset({0xD503241F, 0xD503245F, 0xD503249F, 0xD50324DF})
BRK_MASK, BRK = 0xFFE0001F, 0xD4200000


def word(code: bytes, offset: int = 0) -> int:
    if offset + INSN_SIZE > len(code):
        raise DecodeError(f"need 4 bytes of A64 code at offset {offset}, have {len(code) - offset}")
    return int.from_bytes(code[offset:offset + INSN_SIZE], "little")


def _sext(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


def branch_target(insn: int, address: int) -> Optional[Tuple[str, int]]:
    """("bl" or "b", target) for an immediate BL/B at `address`, else None."""
    op = insn & 0xFC000000
    if op not in (0x94000000, 0x14000000):
        return None
    target = (address + 4 * _sext(insn & 0x03FFFFFF, 26)) & MASK64
    return ("bl" if op == 0x94000000 else "b"), target


def ldr_literal(insn: int, address: int) -> Optional[Tuple[int, int]]:
    """(Rt, the literal's address) for a 64-bit LDR (literal) at `address`
    (C6.2.167: opc 01, V 0, imm19 words from the instruction), else None."""
    if insn & 0xFF000000 != 0x58000000:
        return None
    return insn & 0x1F, (address + 4 * _sext(insn >> 5 & 0x7FFFF, 19)) & MASK64


def direct_calls(code: bytes, start: int) -> List[Tuple[int, int, int]]:
    """[(address, target, address after it)] of every BL in `code`."""
    out = []
    for off in range(0, len(code) - INSN_SIZE + 1, INSN_SIZE):
        hit = branch_target(word(code, off), start + off)
        if hit and hit[0] == "bl":
            out.append((start + off, hit[1], start + off + INSN_SIZE))
    return out


def decode_stp(insn: int) -> Optional[Dict[str, int]]:
    """STP Xt1, Xt2, [Xn|SP, #imm] (signed offset) or [..., #imm]! (pre-index):
    {"t1", "t2", "n", "imm", "writeback"}, else None."""
    top = insn & 0xFFC00000
    if top == 0xA9000000:
        writeback = 0
    elif top == 0xA9800000:
        writeback = 1
    else:
        return None
    return {"t1": insn & 31, "t2": (insn >> 10) & 31, "n": (insn >> 5) & 31,
            "imm": 8 * _sext((insn >> 15) & 0x7F, 7), "writeback": writeback}


def leading_stores(code: bytes) -> int:
    """How many bytes at the start of `code` are STPs of general registers
    to [sp, #imm]: kernel_entry's saving of x0-x29 into pt_regs
    (arch/arm64/kernel/entry.S), before it clears them."""
    off = 0
    while off + INSN_SIZE <= len(code):
        stp = decode_stp(word(code, off))
        if stp is None or stp["n"] != 31 or stp["writeback"]:
            break
        off += INSN_SIZE
    return off


def decode_mov(insn: int) -> Optional[Tuple[str, int, int]]:
    """("orr", d, m) for MOV Xd, Xm (ORR Xd, XZR, Xm: register 31 is XZR)
    or ("add", d, m) for MOV Xd|SP, Xm|SP (ADD #0: register 31 is SP); else
    None."""
    if insn & 0xFFE0FFE0 == 0xAA0003E0:
        return "orr", insn & 31, (insn >> 16) & 31
    if insn & 0xFFFFFC00 == 0x91000000:
        return "add", insn & 31, (insn >> 5) & 31
    return None


def is_brk(insn: int) -> bool:
    return insn & BRK_MASK == BRK


# `sub x0, sp, x0` (SUB, extended register, UXTX): kernel_ventry's stack
# overflow test (arch/arm64/kernel/entry.S, CONFIG_VMAP_STACK) holds sp in x0
# between its first and second such instruction.
SUB_X0_SP_X0 = 0xCB2063E0


def x0_clobbered_window(code: bytes):
    """(start, end) byte offsets in a vector slot's `code` where a pc means
    x0 is not the interrupted context's (after the first `sub x0, sp, x0`
    ran, up to and including the second), or None when the slot has no
    such test."""
    hits = [i for i in range(0, len(code) - INSN_SIZE + 1, INSN_SIZE) if word(code, i) == SUB_X0_SP_X0]
    return (hits[0] + INSN_SIZE, hits[1]) if len(hits) >= 2 else None
