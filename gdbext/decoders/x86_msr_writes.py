"""The MSR writes a short x86-64 function makes, read from its machine code:
what syscall_init() (arch/x86/kernel/cpu/common.c) programs into STAR,
LSTAR, CSTAR, SYSENTER_* and SYSCALL_MASK on the kernel being debugged.

What it writes differs between kernels, and not only by version (vendor
checks get backported): 5.10 writes CSTAR on every vendor and SYSCALL_MASK
0x47700; "x86/syscall: Maximize MSR_SYSCALL_MASK" (5.14, 6de4ac1d03f7) made
the mask 0x257fd5, and "x86/cpu: Don't write CSTAR MSR on Intel CPUs" (5.18,
9c7e2634f647) skips CSTAR when boot_cpu_data.x86_vendor is Intel.  So the
function is walked along the path this CPU takes: a `cmpb $imm,mem` (or a
`movzbl mem` and `test`) before je/jne is decided by reading the byte from
the running kernel (read_u8), and every wrmsr on the path is recorded.

Only the forms gcc 10-14 emit there are understood (register moves and
immediates, the paravirt `call *pv_ops...`, a native `wrmsr`, direct calls
that clobber the caller-saved registers, je/jne/jmp); anything else is a
DecodeError and the caller falls back on what it knows.  Pure: bytes in.
"""
from __future__ import annotations

import dataclasses
import struct
from typing import Callable, Dict, List, Optional

from gdbext.decoders.bits import MASK32, MASK64
from gdbext.decoders.x86insn import modrm_length, multibyte_nop_length
from gdbext.errors import DecodeError

RAX, RCX, RDX, RSI, RDI = 0, 1, 2, 6, 7
CALLER_SAVED = (0, 1, 2, 6, 7, 8, 9, 10, 11)   # SysV x86-64 ABI
MAX_STEPS = 400


@dataclasses.dataclass
class MsrWrite:
    index: int
    value: Optional[int]        # None: computed at run time (a call's result, a per-cpu read)
    at: int                     # the address of the call or wrmsr


@dataclasses.dataclass
class Walk:
    code: bytes
    start: int
    read_u8: Callable[[int], int]
    is_wrmsr_call: Callable[[int], bool]    # an indirect call's slot (link address) is write_msr
    is_return: Callable[[int], bool]         # a jmp target that returns (the return thunk)
    value_in_rsi: bool = False               # write_msr(msr, u64 val) rather than (msr, lo, hi)
    regs: Dict[int, Optional[int]] = dataclasses.field(default_factory=dict)
    zf: Optional[bool] = None
    writes: List[MsrWrite] = dataclasses.field(default_factory=list)

    def u8(self, i):
        if i >= len(self.code):
            raise DecodeError(f"code ends at {self.start + i:#x}")
        return self.code[i]

    def imm(self, i, n, signed=False):
        raw = self.code[i:i + n]
        if len(raw) != n:
            raise DecodeError(f"code ends at {self.start + i:#x}")
        return struct.unpack({1: "<b", 4: "<i", 8: "<q"}[n] if signed else {1: "<B", 4: "<I", 8: "<Q"}[n], raw)[0]

    def reg(self, r, width=64):
        v = self.regs.get(r)
        return None if v is None else v & (MASK64 if width == 64 else MASK32)

    def set(self, r, value, wide):
        self.regs[r] = None if value is None else value & (MASK64 if wide else MASK32)


def msr_writes(code: bytes, start: int, read_u8, is_wrmsr_call, is_return, value_in_rsi=False) -> List[MsrWrite]:
    """The wrmsr's executed by `code` (a function at link address `start`)
    on the path the running kernel's bytes choose, in order."""
    w = Walk(code, start, read_u8, is_wrmsr_call, is_return, value_in_rsi)
    i = 0
    for _ in range(MAX_STEPS):
        nxt = _step(w, i)
        if nxt is None:
            return w.writes
        if not 0 <= nxt < len(code):
            raise DecodeError(f"jump to {start + nxt:#x}, outside the function")
        i = nxt
    raise DecodeError(f"no return within {MAX_STEPS} instructions")


def _record(w: Walk, at: int, index: Optional[int], lo: Optional[int], hi: Optional[int]) -> None:
    if index is None:
        raise DecodeError(f"wrmsr at {at:#x} with an MSR number not known from the code")
    value = None if lo is None or hi is None else (hi << 32) | lo
    w.writes.append(MsrWrite(index, value, at))


def _call(w: Walk, at: int, slot: Optional[int]) -> None:
    if slot is not None and w.is_wrmsr_call(slot):
        if w.value_in_rsi:
            v = w.reg(RSI)
            _record(w, at, w.reg(RDI, 32), None if v is None else v & MASK32, None if v is None else v >> 32)
        else:
            _record(w, at, w.reg(RDI, 32), w.reg(RSI, 32), w.reg(RDX, 32))
    for r in CALLER_SAVED:
        w.regs[r] = None
    w.zf = None


def _step(w: Walk, i: int) -> Optional[int]:
    """Execute the instruction at code[i]; the next offset, or None at a return."""
    c = w.code
    if c[i:i + 4] == b"\xf3\x0f\x1e\xfa":                      # endbr64
        return i + 4
    prefix = 1 if w.u8(i) == 0x66 else 0                       # nopw
    if w.u8(i + prefix) == 0x90:
        return i + prefix + 1
    nop = multibyte_nop_length(c, i + prefix)
    if nop:
        return i + prefix + nop
    gs = c[i] == 0x65                                          # %gs: a per-cpu load, value unknown
    p = i + 1 if gs else i
    rex = w.u8(p) if 0x40 <= w.u8(p) <= 0x4F else 0
    op_at = p + (1 if rex else 0)
    wide, rx, bx = bool(rex & 8), (rex & 4) << 1, (rex & 1) << 3
    op = w.u8(op_at)
    if 0x50 <= op <= 0x5F:                                     # push / pop
        if op >= 0x58:
            w.regs[(op - 0x58) | bx] = None
        return op_at + 1
    if 0xB8 <= op <= 0xBF:                                     # mov $imm, reg (movabs with REX.W)
        n = 8 if wide else 4
        w.set((op - 0xB8) | bx, w.imm(op_at + 1, n), True)
        return op_at + 1 + n
    if op in (0xC3, 0xC2):
        return None
    if op in (0xE8, 0xE9, 0xEB, 0x74, 0x75):
        return _branch(w, i, op_at, op)
    if op == 0x0F:
        return _two_byte(w, op_at, wide, rx)
    if op == 0xFF:
        return _indirect(w, i, op_at)
    return _modrm_op(w, op_at, op, wide, rx, bx, gs)


def _branch(w: Walk, i: int, op_at: int, op: int) -> Optional[int]:
    n = 1 if op in (0xEB, 0x74, 0x75) else 4
    end = op_at + 1 + n
    target = end + w.imm(op_at + 1, n, signed=True)
    if op == 0xE8:
        _call(w, w.start + i, None)
        return end
    if op in (0x74, 0x75):
        if w.zf is None:
            raise DecodeError(f"je/jne at {w.start + i:#x} on flags the walk does not know")
        return target if w.zf == (op == 0x74) else end
    if not 0 <= target < len(w.code):
        if w.is_return(w.start + target):
            return None
        raise DecodeError(f"jmp at {w.start + i:#x} leaves the function")
    return target


def _two_byte(w: Walk, op_at: int, wide: bool, rx: int) -> Optional[int]:
    op2 = w.u8(op_at + 1)
    if op2 == 0x30:                                            # wrmsr: ecx, edx:eax
        _record(w, w.start + op_at, w.reg(RCX, 32), w.reg(RAX, 32), w.reg(RDX, 32))
        return op_at + 2
    if op2 in (0x84, 0x85):                                    # je / jne rel32
        return _jcc32(w, op_at, op2)
    if op2 == 0xB6:                                            # movzbl mem, reg
        modrm = w.u8(op_at + 2)
        dst = ((modrm >> 3) & 7) | rx
        target = _rip_target(w, op_at + 2)
        w.set(dst, None if target is None else w.read_u8(w.start + target), wide)
        return op_at + 2 + modrm_length(w.code, op_at + 2)
    raise DecodeError(f"instruction 0f {op2:02x} at {w.start + op_at:#x} is not one syscall_init uses")


def _jcc32(w: Walk, op_at: int, op2: int) -> int:
    end = op_at + 6
    if w.zf is None:
        raise DecodeError(f"je/jne at {w.start + op_at:#x} on flags the walk does not know")
    return end + w.imm(op_at + 2, 4, signed=True) if w.zf == (op2 == 0x84) else end


def _indirect(w: Walk, i: int, op_at: int) -> int:
    modrm = w.u8(op_at + 1)
    if (modrm >> 3) & 7 != 2:
        raise DecodeError(f"ff /{(modrm >> 3) & 7} at {w.start + i:#x} is not a call")
    n = modrm_length(w.code, op_at + 1)
    if n is None:
        raise DecodeError(f"code ends at {w.start + i:#x}")
    slot = _rip_target(w, op_at + 1)
    if slot is not None:
        slot += w.start
    elif modrm == 0x14 and w.u8(op_at + 2) == 0x25:            # call *disp32 (absolute, sign-extended)
        slot = w.imm(op_at + 3, 4, signed=True) & MASK64
    _call(w, w.start + i, slot)
    return op_at + 1 + n


def _rip_target(w: Walk, modrm_at: int) -> Optional[int]:
    """The offset (from start) a RIP-relative ModRM at code[modrm_at] refers to."""
    modrm = w.u8(modrm_at)
    if modrm >> 6 != 0 or modrm & 7 != 5:
        return None
    n = modrm_length(w.code, modrm_at)
    tail = 1 if w.code[modrm_at - 1] == 0x80 else 0           # cmpb: an imm8 follows the displacement
    return modrm_at + n + tail + w.imm(modrm_at + 1, 4, signed=True)


def _modrm_op(w: Walk, op_at: int, op: int, wide: bool, rx: int, bx: int, gs: bool) -> int:
    at = op_at + 1
    modrm = w.u8(at)
    n = modrm_length(w.code, at)
    if n is None:
        raise DecodeError(f"code ends at {w.start + op_at:#x}")
    mod, reg, rm = modrm >> 6, ((modrm >> 3) & 7) | rx, (modrm & 7) | bx
    end = at + n
    if op == 0x80 and reg & 7 == 7:                            # cmpb $imm8, r/m8
        target = _rip_target(w, at)
        if target is None or gs:
            raise DecodeError(f"cmpb at {w.start + op_at:#x} not on a kernel variable")
        w.zf = w.read_u8(w.start + target) == w.u8(end)
        return end + 1
    if op == 0x84 and mod == 3:                                # test r8, r8
        a, b = w.reg(reg), w.reg(rm)
        w.zf = None if a is None or b is None else (a & b & 0xFF) == 0
        return end
    if op == 0x31 and mod == 3:                                # xor
        w.set(rm, 0 if rm == reg else None, wide)
        return end
    if op == 0x89 and mod == 3:                                # mov reg, reg
        w.set(rm, w.reg(reg), wide)
        return end
    if op == 0x8B:                                             # mov r/m, reg
        w.set(reg, w.reg(rm) if mod == 3 else None, wide)
        return end
    if op == 0x8D and mod != 3:                                # lea disp(base), reg
        base = w.reg(rm) if (modrm & 7) not in (4, 5) else None
        disp = 0 if mod == 0 else w.imm(at + 1, 1 if mod == 1 else 4, signed=True)
        w.set(reg, None if base is None else base + disp, wide)
        return end
    if op == 0xC7 and mod == 3 and reg & 7 == 0:               # mov $imm32, reg (sign-extended with REX.W)
        v = w.imm(end, 4, signed=True)
        w.set(rm, v & MASK64, wide)
        return end + 4
    if op == 0xC1 and mod == 3 and reg & 7 in (4, 5):          # shl / shr $imm8
        v, k = w.reg(rm, 64 if wide else 32), w.u8(end)
        w.set(rm, None if v is None else (v << k if reg & 7 == 4 else v >> k), wide)
        return end + 1
    raise DecodeError(f"instruction {op:02x} at {w.start + op_at:#x} is not one syscall_init uses")
