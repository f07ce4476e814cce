"""Getting a vCPU past the A64 instruction at a breakpoint without a
single-step: what the syscall path's functions start with.

- "skip": NOP (ftrace's patchable entry: two before each instrumentable
  function), BTI, and B (resumed at its target);
- "emulate": STP of two registers to [Xn|SP, #imm] with or without
  pre-index writeback (kernel_entry's saves, function prologues), MOV
  between registers;
- anything else (PACIASP needs the CPU's keys, loads, system registers) is
  single-stepped.
Encodings: Arm ARM C6.2 (decoders/arm64_insn.py).  QEMU's breakpoints do
not patch guest memory, so the bytes read are the real ones.
"""
from typing import Dict, List, Tuple

from gdbext.arch.base import ResumePlan
from gdbext.decoders import arm64_insn as insn
from gdbext.decoders.bits import MASK64
from gdbext.errors import DecodeError

STEP = ResumePlan("step", text="other")


def _reg(number: int, sp: bool) -> str:
    """gdb's name for register `number`; 31 is SP or XZR by encoding."""
    if number == 31:
        return "sp" if sp else "xzr"
    return f"x{number}"


def plan_resume(address: int, code: bytes) -> ResumePlan:
    try:
        w = insn.word(code)
    except DecodeError:
        return STEP
    after = (address + insn.INSN_SIZE) & MASK64
    if w == insn.NOP:
        return ResumePlan("skip", 4, after, text="nop")
    if w in insn.BTI:
        return ResumePlan("skip", 4, after, text="bti")
    branch = insn.branch_target(w, address)
    if branch and branch[0] == "b":
        return ResumePlan("skip", 4, branch[1], text="b")
    stp = insn.decode_stp(w)
    if stp is not None and 31 not in (stp["t1"], stp["t2"]):
        op = ("stp", _reg(stp["t1"], False), _reg(stp["t2"], False), _reg(stp["n"], True),
              stp["imm"], stp["writeback"])
        return ResumePlan("emulate", 4, after, op, "stp")
    mov = insn.decode_mov(w)
    if mov is not None:
        form, d, m = mov
        sp = form == "add"
        if d == 31 and not sp:
            return ResumePlan("skip", 4, after, text="mov xzr")
        return ResumePlan("emulate", 4, after, ("mov", _reg(d, sp), _reg(m, sp)), "mov")
    return STEP


def emulate(plan: ResumePlan, regs: Dict[str, int]) -> Tuple[List[Tuple[str, int]], List[Tuple[int, bytes]]]:
    def value(name):
        return 0 if name == "xzr" else regs[name] & MASK64
    if plan.op[0] == "mov":
        _kind, dest, src = plan.op
        return [(dest, value(src))], []
    _kind, t1, t2, base, imm, writeback = plan.op
    address = (value(base) + imm) & MASK64
    data = value(t1).to_bytes(8, "little") + value(t2).to_bytes(8, "little")
    return ([(base, address)] if writeback else []), [(address, data)]
