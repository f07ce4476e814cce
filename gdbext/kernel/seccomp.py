"""A task's seccomp state and its filters, read from the kernel, and what
they return for a syscall.

task_struct.seccomp is { int mode; atomic_t filter_count; struct
seccomp_filter *filter; } (include/linux/seccomp.h).  The filters form a
list from the newest (seccomp.filter) through ->prev; each holds a struct
bpf_prog *prog, whose orig_prog (struct sock_fprog_kern { u16 len; struct
sock_filter *filter; }) is the classic program as user space installed it:
the kernel keeps it when CONFIG_CHECKPOINT_RESTORE or SECCOMP_ARCH_NATIVE
is set (kernel/seccomp.c seccomp_prepare_filter, 6.1 and 6.12; Debian's
kernels have both).  prog->insns itself holds the program converted to
eBPF, which kx does not decode.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from gdbext import arch, errors
from gdbext.decoders import bpf_classic, seccomp as sdec
from gdbext.kernel import backend
from gdbext.kernel.structs import Member, StructReader

_MAX_FILTERS = 1024   # a corrupted ->prev chain must end

TASK_SECCOMP = StructReader("struct task_struct", (
    Member("mode", ("seccomp.mode",), "s", required=False),
    Member("filter_count", ("seccomp.filter_count.counter", "seccomp.filter_count"), "s", required=False),
    Member("filter", ("seccomp.filter",), required=False),
))
FILTER = StructReader("struct seccomp_filter", (
    Member("prev", ("prev",)),
    Member("prog", ("prog",)),
    Member("log", ("log",), required=False),
))
BPF_PROG = StructReader("struct bpf_prog", (
    Member("len", ("len",)),
    Member("orig_prog", ("orig_prog",), required=False),
))
SOCK_FPROG = StructReader("struct sock_fprog_kern", (
    Member("len", ("len",)),
    Member("filter", ("filter",)),
))


@dataclass
class Filter:
    index: int                     # 0: the newest (the one the kernel runs first)
    address: int
    prog: int
    log: Optional[bool]
    insns: Optional[List[bpf_classic.Insn]]
    bpf_len: Optional[int]         # prog->len: eBPF instructions after conversion
    note: Optional[str] = None


@dataclass
class TaskSeccomp:
    mode: Optional[int]            # None: a kernel without CONFIG_SECCOMP
    filter_count: Optional[int]
    filter: int
    filters: List[Filter] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @property
    def mode_name(self) -> Optional[str]:
        return None if self.mode is None else sdec.MODES.get(self.mode, f"unknown ({self.mode})")


def _read_filter(index: int, address: int, cpu) -> Filter:
    f = FILTER.read(address, cpu)
    prog = BPF_PROG.read(f["prog"], cpu) if f["prog"] else {"len": None, "orig_prog": None}
    out = Filter(index, address, f["prog"], None if f["log"] is None else bool(f["log"]), None, prog["len"])
    if not prog["orig_prog"]:
        out.note = ("the kernel kept no copy of the classic program (bpf_prog.orig_prog is NULL: "
                    "CONFIG_CHECKPOINT_RESTORE off); only its eBPF translation is in memory")
        return out
    fprog = SOCK_FPROG.read(prog["orig_prog"], cpu)
    if not 0 < fprog["len"] <= bpf_classic.BPF_MAXINSNS:
        out.note = f"orig_prog->len is {fprog['len']}: not a classic program"
        return out
    raw = backend.read_kernel(fprog["filter"], fprog["len"] * bpf_classic.INSN_SIZE, cpu)
    out.insns = bpf_classic.parse(raw)
    return out


def task_seccomp(task_address: int, cpu=None, with_filters: bool = True) -> TaskSeccomp:
    """The seccomp state of the task at `task_address`; with its filters
    (newest first) unless `with_filters` is False."""
    v = TASK_SECCOMP.read(task_address, cpu)
    state = TaskSeccomp(v["mode"], v["filter_count"], v["filter"] or 0)
    if not with_filters or not state.filter:
        return state
    address, seen = state.filter, set()
    while address and address not in seen:
        if len(seen) >= _MAX_FILTERS:
            state.warnings.append(f"more than {_MAX_FILTERS} filters: the rest are not shown")
            break
        seen.add(address)
        f = _read_filter(len(state.filters), address, cpu)
        state.filters.append(f)
        address = FILTER.read(address, cpu)["prev"]
    if state.filter_count is not None and state.filter_count != len(state.filters):
        # seccomp_attach_filter() counts each filter it links; fork and
        # TSYNC copy the count with the chain (kernel/seccomp.c, fork.c).
        state.warnings.append(f"seccomp.filter_count (Seccomp_filters in /proc/PID/status) is "
                              f"{state.filter_count}, but the chain has {len(state.filters)} filters")
    return state


@dataclass
class Verdict:
    nr: int
    abi: str
    arch: Optional[int]
    ip: int
    args: List[int]
    mode: Optional[str]
    result: Optional[sdec.ChainResult]   # filter mode
    action: str
    ret: int
    text: str

    def to_dict(self, errno_name=lambda n: None) -> dict:
        r = self.result
        return {"nr": self.nr, "abi": self.abi, "arch": self.arch, "instruction_pointer": self.ip,
                "args": self.args, "mode": self.mode, "action": self.action, "ret": self.ret,
                "data": self.ret & sdec.RET_DATA, "filter": r.winner if r else None,
                "results": [{"filter": i, "ret": v, "action": sdec.action_of(v),
                             "text": sdec.format_return(v, errno_name)}
                            for i, v in enumerate(r.results)] if r else [],
                "verdict": self.text}


# Mode 1 allows read, write, exit and the ABI's sigreturn (kernel/seccomp.c
# mode1_syscalls; asm-generic/seccomp.h: rt_sigreturn natively, sigreturn
# for compat tasks).
_STRICT_NATIVE = ("read", "write", "exit", "rt_sigreturn")
_STRICT_COMPAT = ("read", "write", "exit", "sigreturn")


def evaluate(state: TaskSeccomp, nr: int, abi: str, args: Sequence[int], ip: int,
             name: Optional[str] = None, errno_name=lambda n: None) -> Verdict:
    """What the kernel's seccomp check decides for syscall `nr` of ABI
    `abi` (kx's name) with `args`, made from user address `ip`."""
    a = arch.current()
    audit = a.seccomp_arch(abi)
    args = [int(x) for x in list(args)[:6]] + [0] * max(0, 6 - len(args))
    common = dict(nr=nr, abi=abi, arch=audit, ip=ip, args=args, mode=state.mode_name)
    if state.mode in (None, 0):
        return Verdict(result=None, action="ALLOW", ret=sdec.RET_ALLOW,
                       text="no seccomp: the syscall runs", **common)
    if state.mode == 1:
        allowed = _STRICT_NATIVE if abi == a.abis[0].name else _STRICT_COMPAT
        ok = name in allowed
        return Verdict(result=None, action="ALLOW" if ok else "KILL_THREAD",
                       ret=sdec.RET_ALLOW if ok else sdec.RET_KILL_THREAD,
                       text=("strict mode allows it" if ok else
                             f"strict mode allows only {', '.join(allowed)}: SIGKILL"), **common)
    missing = [f.index for f in state.filters if f.insns is None]
    if audit is None or missing:
        why = (f"filter {missing[0]} has no classic program in memory" if missing
               else f"kx does not know seccomp_data.arch for the {abi} ABI")
        raise errors.NotSupported(f"cannot run the filters: {why}")
    data = sdec.pack_data(nr, audit, ip, args)
    result = sdec.run_chain([f.insns for f in state.filters], data)
    return Verdict(result=result, action=result.action, ret=result.ret,
                   text=sdec.describe(result.ret, errno_name), **common)
