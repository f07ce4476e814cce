"""Getting a vCPU past the instruction at a breakpoint without a
single-step: the x86 instructions the trace loop recognises (64-bit code,
and 32-bit code for an i386 kernel), and their effect on the registers and
the stack.

Only what the kernel's syscall entry and exit paths start with is here:
NOPs of every encoding, ENDBR64/ENDBR32, PAUSE, `jmp rel8/rel32` (resumed
at the next or the jump's address), and `push r`, `mov r, r`, `mov $imm32,
r`, `test r, r` (register forms, emulated).  Anything else is single-stepped.  The bytes
are the real ones from guest memory: QEMU's breakpoints do not patch it.

Opcodes from SDM Vol.2A/2B (NOP, PAUSE, ENDBR64, JMP, PUSH, MOV, TEST);
prefixes and REX from SDM Vol.2A 2.1 and 2.2.1.
"""
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Tuple

from gdbext.arch.base import ResumePlan
from gdbext.decoders.x86insn import modrm_length

STEP = ResumePlan("step", text="other")

# Register numbers as instructions encode them (SDM Vol.2A Table 3-1),
# REX.B/REX.R adding 8.
GPR_ENCODING = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
# 32-bit code (an i386 kernel): no REX; 40-4f are inc/dec there (SDM Vol.2A 2.2.1).
GPR_ENCODING_32 = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")

REP = 0xF3
# Operand-size and segment overrides (SDM Vol.2A 2.1.1); only NOPs take them here.
_LEGACY_PREFIXES = frozenset({0x66, 0x2E, 0x3E, 0x26, 0x36, 0x64, 0x65})
MAX_PREFIXES = 14           # an instruction is at most 15 bytes (SDM Vol.2A 2.1)

# EFLAGS status flags (SDM Vol.1 3.4.3.1)
CF, PF, ZF, SF, OF = 1 << 0, 1 << 2, 1 << 6, 1 << 7, 1 << 11


@dataclass(frozen=True)
class _Insn:
    """The bytes at a breakpoint, read past their prefixes."""
    address: int
    code: bytes
    at: int                     # index of the opcode byte
    prefixes: FrozenSet[int]
    rex: int                    # 0 without a REX prefix
    bits: int = 64              # the code's mode: 64, or 32 (no REX, e-registers)

    def byte(self, k: int) -> Optional[int]:
        """The byte `k` after the opcode (0: the opcode), None past the end."""
        return self.code[self.at + k] if self.at + k < len(self.code) else None

    def plan(self, n: int, kind: str = "skip", op: tuple = (), text: str = "") -> ResumePlan:
        """A plan for this instruction, `n` bytes from the opcode on."""
        length = self.at + n
        return ResumePlan(kind, length, (self.address + length) & self.mask, op, text)

    @property
    def mask(self) -> int:
        return (1 << self.bits) - 1

    def reg(self, number: int, rex_bit: int) -> str:
        if self.bits == 32:
            return GPR_ENCODING_32[number]
        return GPR_ENCODING[number + (8 if self.rex & rex_bit else 0)]


def plan_resume(address: int, code: bytes, bits: int = 64) -> ResumePlan:
    """How to get past the instruction whose bytes start `code` (read from
    guest memory at `address`), in `bits`-bit code."""
    insn = _read_prefixes(address, code, bits)
    if insn is None:
        return STEP
    plan = _plan_nop(insn)
    if plan is None and not insn.prefixes:
        plan = (_plan_jmp(insn) or _plan_push(insn) or _plan_mov(insn) or _plan_mov_imm(insn)
                or _plan_test(insn))
    return plan or STEP


def _read_prefixes(address: int, code: bytes, bits: int = 64) -> Optional[_Insn]:
    i, prefixes = 0, set()
    while i < len(code) and i < MAX_PREFIXES and code[i] in _LEGACY_PREFIXES | {REP}:
        prefixes.add(code[i])
        i += 1
    rex = 0
    if bits == 64 and i < len(code) and 0x40 <= code[i] <= 0x4F:
        rex = code[i]
        i += 1
    if i >= len(code):
        return None
    return _Insn(address, code, i, frozenset(prefixes), rex, bits)


def _plan_nop(insn: _Insn) -> Optional[ResumePlan]:
    """NOP (90; with REX.B it is xchg r8), PAUSE (f3 90), nopw/nopl r/m
    (0f 1f /0), ENDBR64 (f3 0f 1e fa), ENDBR32 (f3 0f 1e fb)."""
    op, rep = insn.byte(0), REP in insn.prefixes
    if op == 0x90 and not insn.rex & 1:
        return insn.plan(1, text="pause" if rep else "nop")
    if op != 0x0F:
        return None
    op2, modrm = insn.byte(1), insn.byte(2)
    if op2 == 0x1F and not rep and modrm is not None and (modrm >> 3) & 7 == 0:
        m = modrm_length(insn.code, insn.at + 2)
        if m is not None:
            return insn.plan(2 + m, text="nop")
    if op2 == 0x1E and rep and modrm in (0xFA, 0xFB):
        return insn.plan(3, text="endbr64" if modrm == 0xFA else "endbr32")
    return None


def _plan_jmp(insn: _Insn) -> Optional[ResumePlan]:
    """jmp rel8 (eb cb), jmp rel32 (e9 cd): resume at the target."""
    size = {0xEB: 1, 0xE9: 4}.get(insn.byte(0))
    if size is None or insn.rex or insn.byte(size) is None:
        return None
    rel = int.from_bytes(insn.code[insn.at + 1:insn.at + 1 + size], "little", signed=True)
    length = insn.at + 1 + size
    return ResumePlan("skip", length, (insn.address + length + rel) & insn.mask, (), "jmp")


def _plan_push(insn: _Insn) -> Optional[ResumePlan]:
    """push r64 (50+r; REX.B selects r8-r15); push r32 in 32-bit code."""
    op = insn.byte(0)
    if not 0x50 <= op <= 0x57 or insn.rex not in (0, 0x41):
        return None
    reg = insn.reg(op - 0x50, 1)
    return insn.plan(1, "emulate", ("push", reg), f"push %{reg}")


def _register_modrm(insn: _Insn) -> Optional[Tuple[str, str]]:
    """(reg, r/m) register names of a ModRM with mod 11, else None."""
    modrm = insn.byte(1)
    if modrm is None or modrm >> 6 != 3:
        return None
    return insn.reg((modrm >> 3) & 7, 4), insn.reg(modrm & 7, 1)


def _plan_mov(insn: _Insn) -> Optional[ResumePlan]:
    """mov r, r: 89 /r (r/m <- reg), 8b /r (reg <- r/m); 32-bit without
    REX.W."""
    op = insn.byte(0)
    regs = _register_modrm(insn) if op in (0x89, 0x8B) else None
    if regs is None:
        return None
    reg, rm = regs
    bits = 64 if insn.rex & 8 else 32
    dst, src = (rm, reg) if op == 0x89 else (reg, rm)
    return insn.plan(2, "emulate", ("mov", dst, src, bits), f"mov{bits} %{src},%{dst}")


def _plan_mov_imm(insn: _Insn) -> Optional[ResumePlan]:
    """mov $imm32, r32 (b8+r id; REX.B selects r8d-r15d, zero-extended in
    64-bit mode; REX.W's imm64 form is left to a step).  i386's entry
    stubs return through one (SWITCH_TO_ENTRY_STACK, entry_32.S)."""
    op = insn.byte(0)
    if op is None or not 0xB8 <= op <= 0xBF or insn.rex not in (0, 0x41) or insn.byte(4) is None:
        return None
    reg = insn.reg(op - 0xB8, 1)
    value = int.from_bytes(insn.code[insn.at + 1:insn.at + 5], "little")
    return insn.plan(5, "emulate", ("set", reg, value), f"mov ${value:#x},%{reg}")


def _plan_test(insn: _Insn) -> Optional[ResumePlan]:
    """test r, r: 84 /r (8-bit), 85 /r (32-bit, 64-bit with REX.W)."""
    op = insn.byte(0)
    regs = _register_modrm(insn) if op in (0x84, 0x85) else None
    if regs is None:
        return None
    modrm = insn.byte(1)
    if op == 0x84 and not insn.rex and ((modrm >> 3) & 7 >= 4 or modrm & 7 >= 4):
        return None       # ah/ch/dh/bh: not worth it
    bits = 8 if op == 0x84 else (64 if insn.rex & 8 else 32)
    return insn.plan(2, "emulate", ("test",) + regs + (bits,), f"test{bits}")


def emulate(plan: ResumePlan, regs: Dict[str, int],
            bits: int = 64) -> Tuple[List[Tuple[str, int]], List[Tuple[int, bytes]]]:
    """The register and memory writes that have the effect of `plan` on a
    vCPU with registers `regs` running `bits`-bit code: ([(register,
    value)], [(address, bytes)])."""
    kind = plan.op[0]
    if kind == "push":
        size, sp_name = (8, "rsp") if bits == 64 else (4, "esp")
        value = regs[plan.op[1]] & ((1 << bits) - 1)
        sp = (regs[sp_name] - size) & ((1 << bits) - 1)
        return [(sp_name, sp)], [(sp, value.to_bytes(size, "little"))]
    if kind == "mov":
        # A 32-bit destination is zero-extended (SDM Vol.1 3.4.1.1).
        _, dst, src, bits = plan.op
        return [(dst, regs[src] & ((1 << bits) - 1))], []
    if kind == "test":
        return [("eflags", _test_flags(regs, *plan.op[1:]))], []
    if kind == "set":
        # In 64-bit mode the 32-bit result is zero-extended into the full
        # register (SDM Vol.1 3.4.1.1): the value as it is.
        _, dst, value = plan.op
        return [(dst, value)], []
    raise ValueError(f"cannot emulate {plan}")


def _test_flags(regs: Dict[str, int], a: str, b: str, bits: int) -> int:
    """EFLAGS after `test a, b`: CF = OF = 0, SF, ZF, PF from the result,
    AF undefined and left as it was (SDM Vol.2B TEST)."""
    result = regs[a] & regs[b] & ((1 << bits) - 1)
    flags = regs["eflags"] & ~(CF | PF | ZF | SF | OF)
    if result == 0:
        flags |= ZF
    if result >> (bits - 1) & 1:
        flags |= SF
    if bin(result & 0xFF).count("1") % 2 == 0:
        flags |= PF
    return flags
