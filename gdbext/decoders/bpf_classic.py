"""Classic BPF (cBPF), the instruction set of seccomp filters: the encoding,
parsing `struct sock_filter` arrays, and running a program on a data block.

Facts from include/uapi/linux/filter.h and bpf_common.h (the encoding),
net/core/filter.c (bpf_check_classic, and bpf_convert_filter, which is how
the kernel really runs a classic program: as eBPF), kernel/seccomp.c
(seccomp_check_filter: the opcodes a seccomp filter may use), Linux 6.1 and
6.12.  Every value is 32 bits wide; A and X start at 0.
"""
from dataclasses import dataclass
from typing import List, Sequence

from gdbext import errors

INSN_SIZE = 8                  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k
BPF_MAXINSNS = 4096            # include/uapi/linux/bpf_common.h
BPF_MEMWORDS = 16              # scratch memory M[0..15]
MASK32 = 0xFFFFFFFF

# The instruction classes, and the fields of `code` (bpf_common.h).
LD, LDX, ST, STX, ALU, JMP, RET, MISC = range(8)
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0)
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
K, X = 0x00, 0x08
RET_A = 0x10
TAX, TXA = 0x00, 0x80

ALU_SYMBOLS = {ADD: "+", SUB: "-", MUL: "*", DIV: "/", OR: "|", AND: "&", LSH: "<<", RSH: ">>",
               MOD: "%", XOR: "^"}


def bpf_class(code: int) -> int:
    return code & 0x07


def bpf_op(code: int) -> int:
    return code & 0xF0


def bpf_src(code: int) -> int:
    return code & 0x08


@dataclass(frozen=True)
class Insn:
    code: int
    jt: int
    jf: int
    k: int

    def pack(self) -> bytes:
        return (self.code.to_bytes(2, "little") + bytes((self.jt, self.jf))
                + self.k.to_bytes(4, "little"))


def parse(raw: bytes) -> List[Insn]:
    """struct sock_filter[] (little-endian, as x86-64 stores it)."""
    if len(raw) % INSN_SIZE:
        raise errors.DecodeError(f"a classic BPF program is a multiple of {INSN_SIZE} bytes, not {len(raw)}")
    return [Insn(int.from_bytes(raw[i:i + 2], "little"), raw[i + 2], raw[i + 3],
                 int.from_bytes(raw[i + 4:i + 8], "little")) for i in range(0, len(raw), INSN_SIZE)]


def pack(prog: Sequence[Insn]) -> bytes:
    return b"".join(i.pack() for i in prog)


def jump_targets(prog: Sequence[Insn], pc: int) -> List[int]:
    """The instructions control can go to after `pc` (none after a RET)."""
    insn = prog[pc]
    cls = bpf_class(insn.code)
    if cls == RET:
        return []
    if cls == JMP:
        if bpf_op(insn.code) == JA:
            return [pc + 1 + insn.k]
        return sorted({pc + 1 + insn.jt, pc + 1 + insn.jf})
    return [pc + 1]


def check(prog: Sequence[Insn]) -> None:
    """What bpf_check_classic() refuses, for a program read from memory
    (which the kernel already checked) or written by hand: a length of 0 or
    over BPF_MAXINSNS, jumps out of the program, a last instruction that is
    not a RET, constant division by 0, shifts by 32 or more, M[] out of range."""
    if not 0 < len(prog) <= BPF_MAXINSNS:
        raise errors.DecodeError(f"a classic BPF program has 1 to {BPF_MAXINSNS} instructions, not {len(prog)}")
    if bpf_class(prog[-1].code) != RET:
        raise errors.DecodeError("the last instruction is not a RET")
    for pc, insn in enumerate(prog):
        cls, op = bpf_class(insn.code), bpf_op(insn.code)
        if any(t >= len(prog) for t in jump_targets(prog, pc)):
            raise errors.DecodeError(f"instruction {pc} jumps past the end of the program")
        if cls == ALU and bpf_src(insn.code) == K:
            if op in (DIV, MOD) and insn.k == 0:
                raise errors.DecodeError(f"instruction {pc} divides by the constant 0")
            if op in (LSH, RSH) and insn.k >= 32:
                raise errors.DecodeError(f"instruction {pc} shifts by {insn.k}")
        if (cls in (ST, STX) or (cls in (LD, LDX) and insn.code & 0xE0 == MEM)) and insn.k >= BPF_MEMWORDS:
            raise errors.DecodeError(f"instruction {pc} uses M[{insn.k}] (there are {BPF_MEMWORDS})")


class _Machine:
    """A, X and M[] while a program runs on `data`."""

    def __init__(self, data: bytes):
        self.data = data
        self.a = self.x = 0
        self.mem = [0] * BPF_MEMWORDS

    def load(self, insn: Insn) -> int:
        mode = insn.code & 0xE0
        if mode == IMM:
            return insn.k
        if mode == LEN:
            return len(self.data)
        if mode == MEM:
            return self.mem[insn.k]
        if mode == ABS and insn.code & 0x18 == W:
            if insn.k % 4 or insn.k + 4 > len(self.data):
                # seccomp_check_filter refuses unaligned or out-of-range loads.
                raise errors.DecodeError(f"load of 4 bytes at offset {insn.k} outside the data")
            return int.from_bytes(self.data[insn.k:insn.k + 4], "little")
        raise errors.DecodeError(f"load {insn.code:#06x} is not allowed in a seccomp filter")

    def alu(self, insn: Insn) -> None:
        op = bpf_op(insn.code)
        v = self.x if bpf_src(insn.code) == X else insn.k
        a = self.a
        if op == NEG:
            self.a = -a & MASK32
            return
        if op in (DIV, MOD) and v == 0:
            # bpf_convert_filter: a classic program that divides by X == 0 returns 0.
            raise _Return(0)
        result = {ADD: lambda: a + v, SUB: lambda: a - v, MUL: lambda: a * v, DIV: lambda: a // v,
                  MOD: lambda: a % v, OR: lambda: a | v, AND: lambda: a & v, XOR: lambda: a ^ v,
                  LSH: lambda: a << (v & 31), RSH: lambda: a >> (v & 31)}.get(op)
        if result is None:
            raise errors.DecodeError(f"ALU operation {insn.code:#06x} is not classic BPF")
        self.a = result() & MASK32


class _Return(Exception):
    def __init__(self, value: int):
        super().__init__(value)
        self.value = value


def _jump(m: _Machine, insn: Insn, pc: int) -> int:
    op = bpf_op(insn.code)
    if op == JA:
        return pc + 1 + insn.k
    v = m.x if bpf_src(insn.code) == X else insn.k
    taken = {JEQ: m.a == v, JGT: m.a > v, JGE: m.a >= v, JSET: bool(m.a & v)}.get(op)
    if taken is None:
        raise errors.DecodeError(f"jump {insn.code:#06x} is not classic BPF")
    return pc + 1 + (insn.jt if taken else insn.jf)


def _step(m: _Machine, insn: Insn, pc: int) -> int:
    """Run one instruction; the next pc (RET raises _Return)."""
    cls = bpf_class(insn.code)
    if cls == RET:
        raise _Return((m.a if insn.code & 0x18 == RET_A else insn.k) & MASK32)
    if cls == JMP:
        return _jump(m, insn, pc)
    if cls == LD:
        m.a = m.load(insn)
    elif cls == LDX:
        if insn.code & 0xE0 == MSH:
            raise errors.DecodeError("ldx msh is not allowed in a seccomp filter")
        m.x = m.load(insn)
    elif cls in (ST, STX):
        m.mem[insn.k] = m.a if cls == ST else m.x
    elif cls == ALU:
        m.alu(insn)
    elif insn.code & 0xF8 == TXA:
        m.a = m.x
    else:
        m.x = m.a
    return pc + 1


def run(prog: Sequence[Insn], data: bytes) -> int:
    """The 32-bit value the program returns for `data`.  Jumps only go
    forward, so this ends after at most len(prog) steps."""
    check(prog)
    m = _Machine(data)
    pc = 0
    try:
        while True:
            pc = _step(m, prog[pc], pc)
    except _Return as done:
        return done.value
