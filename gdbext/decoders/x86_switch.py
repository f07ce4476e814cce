"""The x86-64 syscall dispatch switch, decoded from its machine code.

Since "x86/syscall: Don't force use of indirect calls for system calls"
(Linux 6.9; backported to 6.1.85, 6.6.26 ...) do_syscall_64() calls
`x64_sys_call(regs, nr)` and the compat entries `ia32_sys_call(regs, nr)`
(arch/x86/entry/syscall_64.c, syscall_32.c): `switch (nr)` over direct
calls.  gcc 12 (both Debian builds, -fno-jump-tables from arch/x86/Makefile
under retpolines/IBT) compiles it to a binary tree of `cmp $imm,%esi` /
je / ja / jbe / jne ending in tail `jmp __x64_sys_NAME` (`call` for the
noreturn exit/exit_group).  An i386 kernel (6.1.85+, frame pointers, nr
in %edx by -mregparm=3) has the same tree after `push %ebp; mov %esp,%ebp`,
each case a `call __ia32_sys_NAME; pop %ebp; ret`.  A build with jump
tables does not decode: the caller says so and falls back to the table.

Sets of nr values are sorted lists of inclusive (lo, hi) intervals over the
32-bit `unsigned int nr`.  Pure: bytes in, a SwitchMap out; anything
unexpected is a DecodeError, so a patched function is reported, never
guessed.
"""
from __future__ import annotations

import bisect
import dataclasses
import struct
from typing import List, Optional, Tuple

from gdbext.decoders.bits import MASK32, MASK64, to_signed
from gdbext.decoders.x86insn import multibyte_nop_length
from gdbext.errors import DecodeError

FULL = [(0, MASK32)]
ENDBR64 = b"\xf3\x0f\x1e\xfa"       # IBT landing pad (SDM Vol.2A ENDBR64), 6.2+
# The 32-bit kernel's NOPs (arch/x86/include/asm/nops.h, CONFIG_X86_32:
# `lea 0(%esi),%esi` forms): ftrace patches the entry's call to BYTES_NOP5.
NOPS_32 = tuple(bytes.fromhex(h) for h in ("3e8db42600000000", "8db42600000000", "8db600000000",
                                           "3e8d742600", "8d742600", "8d7600"))


def intersect(a, b):
    """The values in both interval lists."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def complement(a):
    """The 32-bit values not in the interval list."""
    out, pos = [], 0
    for lo, hi in a:
        if lo > pos:
            out.append((pos, lo - 1))
        pos = hi + 1
    if pos <= MASK32:
        out.append((pos, MASK32))
    return out


def _span(lo, hi):
    return [(lo, hi)] if lo <= hi else []


def _signed_span(slo, shi):
    """Signed 32-bit [slo, shi] as unsigned intervals."""
    out = []
    if slo < 0:
        out.append((slo & MASK32, min(shi, -1) & MASK32))
    if shi >= 0:
        out.append((max(slo, 0), shi))
    return sorted(x for x in out if x[0] <= x[1])


def condition_set(cc: int, flags) -> list:
    """The nr values for which condition code `cc` (the low nibble of Jcc,
    SDM Vol.1 Appendix B) holds after `flags`: ("cmp", imm) for
    `cmp $imm,nr` or ("test",) for `test nr,nr`."""
    if flags is None:
        raise DecodeError("conditional jump with no compare before it")
    smin, smax = -(1 << 31), (1 << 31) - 1
    if flags[0] == "test":
        table = {0x2: [], 0x3: FULL, 0x4: [(0, 0)], 0x5: [(1, MASK32)], 0x6: [(0, 0)],
                 0x7: [(1, MASK32)], 0x8: [(1 << 31, MASK32)], 0x9: [(0, smax)],
                 0xC: [(1 << 31, MASK32)], 0xD: [(0, smax)],
                 0xE: [(0, 0), (1 << 31, MASK32)], 0xF: [(1, smax)]}
    else:
        b = flags[1] & MASK32
        sb = to_signed(b, 32)
        table = {0x2: _span(0, b - 1), 0x3: [(b, MASK32)], 0x4: [(b, b)],
                 0x5: complement([(b, b)]), 0x6: [(0, b)], 0x7: _span(b + 1, MASK32),
                 0xC: _signed_span(smin, sb - 1), 0xD: _signed_span(sb, smax),
                 0xE: _signed_span(smin, sb), 0xF: _signed_span(sb + 1, smax)}
    if cc not in table:
        raise DecodeError(f"unsupported condition code {cc:#x} after {flags[0]}")
    return table[cc]


def _compare(code: bytes, p: int, rex: int):
    """`cmp $imm,r32` (83 /7 ib, 81 /7 id, 3d id) or `test r32,r32` (85 /r)
    at code[p] (past prefixes): (length from p, kind, operand) or None."""
    op, rexb = code[p], 8 if rex & 1 else 0
    if op in (0x83, 0x81):
        modrm = code[p + 1]
        if modrm >> 6 == 3 and (modrm >> 3) & 7 == 7:
            reg = (modrm & 7) | rexb
            if op == 0x83:
                return 3, "cmp", (reg, struct.unpack_from("<b", code, p + 2)[0] & MASK32)
            return 6, "cmp", (reg, struct.unpack_from("<I", code, p + 2)[0])
    elif op == 0x3D:
        return 5, "cmp", (rexb, struct.unpack_from("<I", code, p + 1)[0])
    elif op == 0x85:
        modrm = code[p + 1]
        if modrm >> 6 == 3 and (modrm >> 3) & 7 == modrm & 7 and not (rex & 6):
            return 2, "test", (modrm & 7) | rexb
    return None


def _branch(code: bytes, p: int):
    """Jcc rel8/rel32, jmp rel8/rel32, call rel32, ret/int3/ud2 at code[p]
    (no prefixes): (length, kind, operand) or None."""
    op = code[p]
    if 0x70 <= op <= 0x7F:
        return 2, "jcc", (op & 0xF, struct.unpack_from("<b", code, p + 1)[0])
    if op == 0x0F and 0x80 <= code[p + 1] <= 0x8F:
        return 6, "jcc", (code[p + 1] & 0xF, struct.unpack_from("<i", code, p + 2)[0])
    if op == 0xEB:
        return 2, "jmp", struct.unpack_from("<b", code, p + 1)[0]
    if op == 0xE9:
        return 5, "jmp", struct.unpack_from("<i", code, p + 1)[0]
    if op == 0xE8:
        return 5, "call", struct.unpack_from("<i", code, p + 1)[0]
    if op in (0xC3, 0xCC) or code[p:p + 2] == b"\x0f\x0b":
        return 1, "stop", op
    return None


def decode_insn(code: bytes, off: int):
    """The instruction at `off`: (length, kind, operand) with kind one of
    nop, frame (an i386 build's `push %ebp; mov %esp,%ebp`), cmp (reg,
    imm), test (reg), jcc (cc, rel), jmp (rel), call (rel), stop.  Only what
    compiled switches contain."""
    try:
        if code[off:off + 4] == ENDBR64:
            return 4, "nop", None
        nop32 = next((n for n in NOPS_32 if code.startswith(n, off)), None)
        if nop32 is not None:
            return len(nop32), "nop", None
        p = off
        while code[p] in (0x66, 0x2E):                    # NOP padding prefixes
            p += 1
        rex = code[p] if 0x40 <= code[p] <= 0x4F else 0
        p += 1 if rex else 0
        nop = None if rex else multibyte_nop_length(code, p)
        if nop is not None:
            return p - off + nop, "nop", None
        if code[p] == 0x90 and p == off:
            return 1, "nop", None
        if p == off and code[p] == 0x55:                  # push %ebp (i386, frame pointers)
            return 1, "frame", None
        if p == off and code[p:p + 2] == b"\x89\xe5":     # mov %esp,%ebp
            return 2, "frame", None
        if p != off and (p - off > 1 or not rex):
            raise DecodeError(f"unexpected prefix at +{off:#x}")
        if rex & 8:
            raise DecodeError(f"64-bit operation at +{off:#x}: nr is a 32-bit unsigned int")
        hit = _compare(code, p, rex) or (None if rex else _branch(code, p))
        if hit is None:
            raise DecodeError(f"unexpected instruction {code[off:off + 8].hex(' ')} at +{off:#x}")
        length, kind, arg = hit
        return p - off + length, kind, arg
    except (IndexError, struct.error):
        raise DecodeError(f"instruction at +{off:#x} runs past the end of the code") from None


@dataclasses.dataclass
class SwitchMap:
    """nr -> handler address, as a switch function dispatches."""
    start: int
    leaves: List[Tuple[int, int, int]]    # (lo, hi, target), sorted, disjoint, covering 0..2^32-1

    def target(self, nr: int) -> int:
        i = bisect.bisect_right([lf[0] for lf in self.leaves], nr & MASK32) - 1
        return self.leaves[i][2]

    @property
    def default(self) -> int:
        return self.leaves[-1][2]

    @property
    def nr_syscalls(self) -> int:
        """One more than the highest nr with a case of its own."""
        d = self.default
        cases = [hi for lo, hi, t in self.leaves if t != d]
        return max(cases) + 1 if cases else 0

    def cases(self, count: Optional[int] = None) -> List[int]:
        n = self.nr_syscalls if count is None else count
        return [self.target(nr) for nr in range(n)]


class _Path:
    """One path through the switch: where it is, the nr values that reach
    it, the last compare, and the one register compared."""

    def __init__(self, pc, values, flags=None, prologue=True, reg=None):
        self.pc, self.values, self.flags, self.prologue, self.reg = pc, values, flags, prologue, reg


def decode_switch(code: bytes, start: int, max_steps: int = 200000) -> SwitchMap:
    """Decode `long f(const struct pt_regs *regs, unsigned int nr)`'s switch
    from its machine code (`code` at link or run address `start`).

    Walks every path from the entry, splitting the set of nr values at each
    conditional jump; a jump or call leaving the function is a handler.  The
    ftrace site at the entry (`call __fentry__` in the file, a 5-byte NOP or
    a call to a trampoline at run time) is skipped."""
    leaves: List[Tuple[int, int, int]] = []
    pending = [_Path(start, FULL)]
    budget = [max_steps]
    while pending:
        _walk(code, start, pending.pop(), pending, leaves, budget)
    return _switch_map(start, leaves)


def _walk(code, start, path, pending, leaves, budget):
    """Follow `path` to its handler, queueing the other side of each branch."""
    end = start + len(code)
    while True:
        budget[0] -= 1
        if budget[0] < 0:
            raise DecodeError("the switch did not decode within the step limit")
        if not start <= path.pc < end:
            raise DecodeError(f"fell off the function at {path.pc:#x}")
        length, kind, arg = decode_insn(code, path.pc - start)
        nxt = path.pc + length
        if kind == "nop" or (kind == "frame" and path.reg is None):
            path.pc = nxt
            continue
        if kind == "call" and path.prologue:             # the ftrace site
            path.pc, path.prologue = nxt, False
            continue
        path.prologue = False
        if kind in ("cmp", "test"):
            reg = arg[0] if kind == "cmp" else arg
            if path.reg is not None and reg != path.reg:
                raise DecodeError(f"compares two registers (r{path.reg}, r{reg}) at {path.pc:#x}")
            path.reg, path.flags, path.pc = reg, (("cmp", arg[1]) if kind == "cmp" else ("test",)), nxt
        elif kind == "jcc":
            taken = condition_set(arg[0], path.flags)
            yes, no = intersect(path.values, taken), intersect(path.values, complement(taken))
            if yes:
                pending.append(_Path(nxt + arg[1], yes, path.flags, False, path.reg))
            if not no:
                return
            path.values, path.pc = no, nxt
        elif kind in ("jmp", "call"):
            target = (nxt + arg) & MASK64
            if kind == "jmp" and start <= target < end:
                path.pc = target
                continue
            leaves.extend((lo, hi, target) for lo, hi in path.values)
            return
        else:
            raise DecodeError(f"a path of the switch ends in {'ret' if arg == 0xC3 else 'a trap'} "
                              f"at {path.pc:#x}")


def _switch_map(start: int, leaves: List[Tuple[int, int, int]]) -> SwitchMap:
    """The map, once the leaves are known to cover every nr exactly once."""
    leaves.sort()
    pos = 0
    for lo, hi, _ in leaves:
        if lo != pos:
            raise DecodeError("the switch's cases overlap or leave a gap")
        pos = hi + 1
    if pos != MASK32 + 1:
        raise DecodeError("the switch's cases do not cover every nr")
    return SwitchMap(start, leaves)
