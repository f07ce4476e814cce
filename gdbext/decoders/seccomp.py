"""seccomp filters: struct seccomp_data, the SECCOMP_RET_* actions, a
disassembler that names what the filter looks at, and the kernel's way of
running a chain of filters.

Facts (Linux 6.1 and 6.12):
- include/uapi/linux/seccomp.h: struct seccomp_data is { int nr; __u32 arch;
  __u64 instruction_pointer; __u64 args[6]; } (64 bytes, native byte
  order), the modes and the SECCOMP_RET_* values;
- kernel/seccomp.c seccomp_run_filters(): every filter of the task runs,
  newest first (current->seccomp.filter, then ->prev); a result replaces the
  one kept so far only if its action, compared as a signed 32-bit number
  (ACTION_ONLY), is lower, so KILL_PROCESS > KILL_THREAD > TRAP > ERRNO >
  USER_NOTIF > TRACE > LOG > ALLOW and on a tie the newest filter wins;
  __seccomp_filter() treats an unknown action as a kill and caps ERRNO's
  data at MAX_ERRNO (4095);
- include/uapi/linux/audit.h: the AUDIT_ARCH_* values in seccomp_data.arch.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from gdbext.decoders import bpf_classic as bpf
from gdbext.decoders.bpf_classic import Insn

SECCOMP_DATA_SIZE = 64
MODES = {0: "disabled", 1: "strict", 2: "filter"}

RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_USER_NOTIF = 0x7FC00000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
RET_ACTION_FULL = 0xFFFF0000
RET_DATA = 0x0000FFFF
MAX_ERRNO = 4095

ACTIONS = {RET_KILL_PROCESS: "KILL_PROCESS", RET_KILL_THREAD: "KILL_THREAD", RET_TRAP: "TRAP",
           RET_ERRNO: "ERRNO", RET_USER_NOTIF: "USER_NOTIF", RET_TRACE: "TRACE", RET_LOG: "LOG",
           RET_ALLOW: "ALLOW"}
ACTION_VALUES = {name: value for value, name in ACTIONS.items()}

# include/uapi/linux/audit.h (EM_* | __AUDIT_ARCH_64BIT 0x80000000 | __AUDIT_ARCH_LE 0x40000000)
AUDIT_ARCHES = {0xC000003E: "AUDIT_ARCH_X86_64", 0x40000003: "AUDIT_ARCH_I386",
                0xC00000B7: "AUDIT_ARCH_AARCH64", 0x40000028: "AUDIT_ARCH_ARM",
                0xC00000F3: "AUDIT_ARCH_RISCV64", 0x80000016: "AUDIT_ARCH_S390X",
                0xC0000015: "AUDIT_ARCH_PPC64LE", 0x80000015: "AUDIT_ARCH_PPC64"}


def field_name(offset: int) -> Optional[str]:
    """The seccomp_data member a 32-bit load at `offset` reads (x86-64 and
    every little-endian ABI: the low half of a u64 comes first)."""
    if offset == 0:
        return "nr"
    if offset == 4:
        return "arch"
    if offset in (8, 12):
        return "instruction_pointer" + (" >> 32" if offset == 12 else "")
    if 16 <= offset < SECCOMP_DATA_SIZE and offset % 4 == 0:
        i, hi = divmod(offset - 16, 8)
        return f"args[{i}]" + (" >> 32" if hi else "")
    return None


def pack_data(nr: int, arch: int, ip: int, args: Sequence[int]) -> bytes:
    """struct seccomp_data, little-endian; missing arguments are 0."""
    args = list(args)[:6] + [0] * (6 - min(len(args), 6))
    return (int(nr & 0xFFFFFFFF).to_bytes(4, "little") + (arch & 0xFFFFFFFF).to_bytes(4, "little")
            + (ip & (1 << 64) - 1).to_bytes(8, "little")
            + b"".join((a & (1 << 64) - 1).to_bytes(8, "little") for a in args))


def action_of(ret: int) -> str:
    """The action's name; an unknown action is reported as the kill the
    kernel turns it into."""
    name = ACTIONS.get(ret & RET_ACTION_FULL)
    return name if name is not None else f"KILL_PROCESS (unknown action {ret & RET_ACTION_FULL:#x})"


def format_return(ret: int, errno_name: Callable[[int], Optional[str]] = lambda n: None) -> str:
    """`ALLOW`, `ERRNO(1) EPERM`, `TRACE(0x2a)`, `KILL_PROCESS`."""
    ret &= bpf.MASK32
    action = ACTIONS.get(ret & RET_ACTION_FULL)
    data = ret & RET_DATA
    if action is None:
        return f"{ret:#010x} (unknown action: the kernel kills the process)"
    if action == "ERRNO":
        name = errno_name(min(data, MAX_ERRNO))
        return f"ERRNO({data})" + (f" {name}" if name else "")
    if action in ("TRAP", "TRACE") or (data and action not in ("ALLOW", "LOG")):
        return f"{action}({data:#x})"
    return action


def describe(ret: int, errno_name: Callable[[int], Optional[str]] = lambda n: None) -> str:
    """What the kernel does with a filter result (kernel/seccomp.c
    __seccomp_filter, 6.1 and 6.12)."""
    ret &= bpf.MASK32
    action, data = ACTIONS.get(ret & RET_ACTION_FULL), ret & RET_DATA
    if action == "ALLOW":
        return "ALLOW: the syscall runs"
    if action == "LOG":
        return "LOG: the syscall runs and is logged"
    if action == "ERRNO":
        err = min(data, MAX_ERRNO)
        name = errno_name(err)
        return f"ERRNO({data}): the syscall is skipped and returns -{err}" + (f" ({name})" if name else "")
    if action == "TRAP":
        return f"TRAP: the syscall is skipped and SIGSYS is sent (si_errno {data})"
    if action == "TRACE":
        return (f"TRACE({data:#x}): a ptrace tracer gets PTRACE_EVENT_SECCOMP; without one the syscall "
                "fails with -ENOSYS")
    if action == "USER_NOTIF":
        return "USER_NOTIF: the listener on the filter's notification fd decides; without one -ENOSYS"
    if action == "KILL_THREAD":
        return "KILL_THREAD: the thread is killed by SIGSYS (the process, if it is its only thread)"
    if action == "KILL_PROCESS":
        return "KILL_PROCESS: the process is killed by SIGSYS (and dumps core)"
    return f"{ret:#010x}: an unknown action, which the kernel treats as KILL_PROCESS"


def _signed(action: int) -> int:
    return action - (1 << 32) if action & 0x80000000 else action


@dataclass
class ChainResult:
    """The filters' verdict: the winning return value, which filter gave it
    (0 is the newest), and what each filter returned."""
    ret: int
    winner: Optional[int]
    results: List[int]

    @property
    def action(self) -> str:
        return action_of(self.ret)

    @property
    def data(self) -> int:
        return self.ret & RET_DATA


def run_chain(filters: Sequence[Sequence[Insn]], data: bytes) -> ChainResult:
    """Run every filter (newest first, as the kernel walks ->prev) on
    `data` and keep the result of highest precedence."""
    ret, winner, results = RET_ALLOW, None, []
    for index, prog in enumerate(filters):
        cur = bpf.run(prog, data)
        results.append(cur)
        if _signed(cur & RET_ACTION_FULL) < _signed(ret & RET_ACTION_FULL):
            ret, winner = cur, index
    return ChainResult(ret, winner, results)


# ---------------------------------------------------------------------------
# Disassembly

@dataclass
class Line:
    pc: int
    insn: Insn
    text: str

    def to_dict(self) -> Dict:
        return {"line": self.pc, "code": self.insn.code, "jt": self.insn.jt, "jf": self.insn.jf,
                "k": self.insn.k, "text": self.text}


def _a_contents(prog: Sequence[Insn]) -> List[Optional[str]]:
    """For each instruction, the seccomp_data field A holds on every path
    into it, or None (unknown or differing).  Jumps go only forward, so one
    pass in order sees every predecessor first."""
    unknown = object()
    state_in: List[object] = [unknown] * len(prog)   # unknown: no path seen yet
    state_in[0] = None
    for pc, insn in enumerate(prog):
        a = state_in[pc]
        if a is unknown:
            a = None
        cls = bpf.bpf_class(insn.code)
        if cls == bpf.LD:
            a = field_name(insn.k) if insn.code & 0xE0 == bpf.ABS else None
        elif cls == bpf.ALU or (cls == bpf.MISC and insn.code & 0xF8 == bpf.TXA):
            a = None
        for t in bpf.jump_targets(prog, pc):
            if t < len(prog):
                state_in[t] = a if state_in[t] is unknown or state_in[t] == a else None
    return [None if s is unknown else s for s in state_in]


def _operand(k: int, field: Optional[str], names: Dict[str, Callable[[int], Optional[str]]]) -> str:
    """K, named after what it is compared with (a syscall, an arch)."""
    if field == "nr":
        name = names["nr"](k)
        return name if name else f"{k:#x}"
    if field == "arch":
        return AUDIT_ARCHES.get(k, f"{k:#x}")
    return f"{k:#x}"


def _jump_text(pc: int, insn: Insn, field, names) -> str:
    op = bpf.bpf_op(insn.code)
    if op == bpf.JA:
        return f"goto {pc + 1 + insn.k:04d}"
    right = "X" if bpf.bpf_src(insn.code) == bpf.X else _operand(insn.k, field, names)
    sym, neg = {bpf.JEQ: ("==", "!="), bpf.JGT: (">", "<="), bpf.JGE: (">=", "<"),
                bpf.JSET: ("&", None)}.get(op, ("?", None))
    t, f = pc + 1 + insn.jt, pc + 1 + insn.jf
    cond = f"A {sym} {right}"
    if insn.jt == 0 and neg:
        return f"if (A {neg} {right}) goto {f:04d}"
    if insn.jt == 0:
        return f"if (!({cond})) goto {f:04d}"
    if insn.jf == 0:
        return f"if ({cond}) goto {t:04d}"
    return f"if ({cond}) goto {t:04d} else goto {f:04d}"


def _load_text(insn: Insn, reg: str) -> str:
    mode = insn.code & 0xE0
    if mode == bpf.ABS:
        return f"{reg} = {field_name(insn.k) or f'data[{insn.k}]'}"
    if mode == bpf.MEM:
        return f"{reg} = mem[{insn.k}]"
    if mode == bpf.LEN:
        return f"{reg} = sizeof(seccomp_data)"
    if mode == bpf.IMM:
        return f"{reg} = {insn.k:#x}"
    return f"{reg} = ? (load {insn.code:#06x})"


def _insn_text(pc: int, insn: Insn, field, names) -> str:
    cls = bpf.bpf_class(insn.code)
    if cls == bpf.RET:
        if insn.code & 0x18 == bpf.RET_A:
            return "return A"
        return "return " + format_return(insn.k, names["errno"])
    if cls == bpf.JMP:
        return _jump_text(pc, insn, field, names)
    if cls in (bpf.LD, bpf.LDX):
        return _load_text(insn, "A" if cls == bpf.LD else "X")
    if cls in (bpf.ST, bpf.STX):
        return f"mem[{insn.k}] = {'A' if cls == bpf.ST else 'X'}"
    if cls == bpf.ALU:
        op = bpf.bpf_op(insn.code)
        if op == bpf.NEG:
            return "A = -A"
        right = "X" if bpf.bpf_src(insn.code) == bpf.X else f"{insn.k:#x}"
        return f"A {bpf.ALU_SYMBOLS.get(op, '?')}= {right}"
    return "A = X" if insn.code & 0xF8 == bpf.TXA else "X = A"


def disassemble(prog: Sequence[Insn], syscall_name: Callable[[int], Optional[str]] = lambda nr: None,
                errno_name: Callable[[int], Optional[str]] = lambda n: None) -> List[Line]:
    """One Line per instruction: `A = nr`, `if (A != getpid) goto 0005`,
    `return ERRNO(1) EPERM`, with syscall numbers named by `syscall_name`
    wherever A holds seccomp_data.nr."""
    names = {"nr": syscall_name, "errno": errno_name}
    fields = _a_contents(prog) if prog else []
    return [Line(pc, insn, _insn_text(pc, insn, fields[pc], names)) for pc, insn in enumerate(prog)]


def format_listing(lines: Sequence[Line]) -> List[str]:
    """The table: line, code, jt, jf, k and the instruction's meaning."""
    out = [" line  CODE  JT   JF      K", "================================="]
    for ln in lines:
        i = ln.insn
        out.append(f" {ln.pc:04d}: {i.code:#04x} {i.jt:#04x} {i.jf:#04x} {i.k:#010x}  {ln.text}")
    return out
