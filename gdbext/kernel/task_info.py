"""Tasks as the public API (gdbext/api.py) and `kx task` / `kx ps` / `kx regs`
present them: typed records whose to_dict() is the commands' JSON
(docs/interface.md), built from the kernel model (kernel/tasks.py).

kernel/tasks.py reads task_struct; this module adds the names (state, PF_*,
TIF_* flags: kernel/flag_names.py), the stack checks, seccomp and the
credentials (kernel/seccomp.py, creds.py), and the decoded user pt_regs.
"""
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterator, List, Optional

from gdbext import arch, errors
from gdbext.kernel import backend, creds, entry, flag_names, seccomp, tasks


@dataclass
class FlagSet:
    """A flags word and the names of its set bits, e.g.
    FlagSet(0x400100, ["PF_FORKNOEXEC", "PF_RANDOMIZE"])."""
    value: int
    names: List[str]


@dataclass
class StackInfo:
    """A task's kernel stack: [base, top), its size, the user pt_regs
    address (None for a kernel thread), and whether STACK_END_MAGIC holds."""
    base: int
    top: int
    size: int
    pt_regs: Optional[int]
    end_magic_ok: Optional[bool]


@dataclass
class TaskInfo:
    """One task in full, as `kx task --json` prints it.

    >>> t = gdbext.api.task("kxwork")
    >>> t.pid, t.comm, t.state, t.flags.names[:1]
    (85, 'kxwork', 'S (sleeping)', ['PF_FORKNOEXEC'])
    """
    address: int
    pid: int
    tgid: int
    comm: str
    state: str                    # /proc/PID/status style: "S (sleeping)"
    state_value: int
    exit_state: int
    state_names: List[str]
    flags: Optional[FlagSet]       # PF_*
    ti_flags: Optional[FlagSet]    # TIF_*
    syscall_work: Optional[FlagSet]
    ti_status: Optional[FlagSet]
    flag_tables: Dict[str, object]  # where the flag names come from (kernel/flag_names.py)
    thread_info: Dict[str, object]  # {"address", "location": "task_struct" | "stack"}
    stack: StackInfo
    cpu: Optional[int]             # the CPU it last ran on
    running_on: Optional[int]      # the CPU whose current it is, or None
    kernel_thread: bool
    mm: Optional[int]
    active_mm: Optional[int]
    thread: Dict[str, Optional[int]]   # the saved context: {"sp", "fsbase", "gsbase"}
    real_parent: Optional[int]
    warnings: List[str] = field(default_factory=list)
    seccomp: Optional[Dict[str, object]] = None   # {"mode", "mode_value", "filters"}
    creds: Optional[Dict[str, object]] = None     # ids, groups and capability sets

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TaskSummary:
    """One row of `kx ps`: enough to pick a task, cheap to read.

    >>> [t.pid for t in gdbext.api.tasks() if t.comm == "kxwork"]
    [85]
    """
    address: int
    pid: int
    tgid: int
    comm: str
    state: str                 # ps-style letter: R S D T t X Z P I
    cpu: Optional[int]         # running on this CPU now, or None
    last_cpu: Optional[int]
    kernel_thread: bool

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TaskList:
    """Every task (`kx ps --json`); iterates and indexes like a list.

    >>> ps = gdbext.api.tasks()
    >>> len(ps), ps[0].comm
    (57, 'swapper/0')
    """
    tasks: List[TaskSummary]
    warnings: List[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[TaskSummary]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, i):
        return self.tasks[i]

    def to_dict(self) -> dict:
        return {"tasks": [t.to_dict() for t in self.tasks], "count": len(self.tasks),
                "warnings": list(self.warnings)}


def _flag_set(value: Optional[dict]) -> Optional[FlagSet]:
    return None if value is None else FlagSet(value["value"], value["names"])


def security_facts(task: tasks.Task, cpu: int, warnings: List[str]) -> tuple:
    """({mode, mode_value, filters}, creds) of `task`; None for a part this
    kernel's debug info or memory does not give, with a warning."""
    sec = cred = None
    try:
        state = seccomp.task_seccomp(task.address, cpu, with_filters=False)
        count = state.filter_count
        if count is None and state.filter:
            count = len(seccomp.task_seccomp(task.address, cpu).filters)
        sec = {"mode": state.mode_name, "mode_value": state.mode, "filters": count or 0}
    except errors.KxError as exc:
        warnings.append(f"seccomp not shown: {exc}")
    try:
        cred = creds.task_creds(task.address, cpu)
    except errors.KxError as exc:
        warnings.append(f"credentials not shown: {exc}")
    return sec, cred


def task_info(task: tasks.Task, cpu: int, named: bool) -> TaskInfo:
    """`task` (read with detail) in full; `named` when the user picked it
    (by pid, comm or address) rather than as `cpu`'s current."""
    warnings = tasks.task_warnings(task, cpu, named=named)
    state = flag_names.state_of(task)
    facts = tasks.stack_facts(task, cpu)
    warnings += facts.pop("warnings")
    flags = flag_names.task_flags(task)
    sec, cred = security_facts(task, cpu, warnings)
    return TaskInfo(
        address=task.address, pid=task.pid, tgid=task.tgid, comm=task.comm,
        state=state.label, state_value=task.state, exit_state=task.exit_state, state_names=state.names,
        flags=_flag_set(flags["flags"]), ti_flags=_flag_set(flags["ti_flags"]),
        syscall_work=_flag_set(flags["syscall_work"]), ti_status=_flag_set(flags["ti_status"]),
        flag_tables=flags["flag_tables"],
        thread_info={"address": tasks.thread_info_address(task),
                     "location": "task_struct" if tasks.thread_info_in_task() else "stack"},
        stack=StackInfo(**facts), cpu=task.cpu, running_on=task.running_on,
        kernel_thread=task.is_kernel_thread, mm=task.mm or None, active_mm=task.active_mm or None,
        thread={"sp": task.thread_sp, "fsbase": task.fsbase, "gsbase": task.gsbase},
        real_parent=task.real_parent, warnings=warnings, seccomp=sec, creds=cred)


def task_list(cpu: Optional[int] = None) -> TaskList:
    """Every task (tasks.all_tasks), and whether `current` and the
    runqueues agree on every CPU."""
    rows = [TaskSummary(address=t.address, pid=t.pid, tgid=t.tgid, comm=t.comm, state=flag_names.state_of(t).letter,
                        cpu=t.running_on, last_cpu=t.cpu, kernel_thread=t.is_kernel_thread)
            for t in tasks.all_tasks(cpu)]
    warnings = [w for w in (tasks.current_disagreement(c) for c in backend.cpus()) if w]
    return TaskList(rows, warnings)


# ---------------------------------------------------------------------------
# User registers (kx regs)

@dataclass
class RegArg:
    """A syscall argument as pt_regs saved it: the ABI's register name, the
    pt_regs member and the value (masked to the ABI's width)."""
    reg: str
    field: str
    value: int


@dataclass
class UserRegs:
    """The user-mode registers a task saved on its kernel stack (`kx regs
    --json`); `regs` holds every pt_regs member by name.

    >>> r = gdbext.api.pt_regs("hello64")
    >>> r.mode, r.syscall["name"], hex(r.regs["ip"])
    ('64', 'write', '0x401017')
    """
    task: Dict[str, object]               # {"address", "pid", "comm"}
    address: int                          # of the pt_regs
    mode: str                             # the architecture's user mode word ("64", "32")
    regs: Dict[str, int]
    syscall: Optional[Dict[str, object]]  # {"nr", "name", "abi", "x32"} or None
    nr_reg: str
    args: List[RegArg]
    extra: Dict[str, object] = field(default_factory=dict)  # the architecture's keys (x86: cs, ss, rflags)
    warnings: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"task": dict(self.task), "address": self.address, "mode": self.mode, "regs": dict(self.regs),
                "syscall": self.syscall, "nr_reg": self.nr_reg, "args": [asdict(a) for a in self.args],
                **self.extra, "warnings": list(self.warnings)}


def syscall_name(nr: int, abi: str) -> Optional[str]:
    """nr -> name from the kernel's own tables, None when unknown."""
    try:
        return backend.syscalls().table(abi).name(nr)
    except errors.KxError:
        return None


def describe_syscall(nr: int, mode: str) -> Optional[Dict[str, object]]:
    """{nr, name, abi, x32} for the number saved in pt_regs (orig_ax on
    x86-64), or None if not a syscall."""
    if nr < 0:
        return None
    a = arch.current()
    choice = a.split_nr(a.user_abi(mode), nr)
    return {"nr": nr, "name": syscall_name(choice.nr, choice.abi), "abi": choice.abi, "x32": choice.flagged}


def live_warning(task: tasks.Task) -> Optional[str]:
    """Why pt_regs may not be what the CPU running `task` holds, or None."""
    if task.running_on is None:
        return None
    a = arch.current()
    live = backend.registers(task.running_on)
    if a.in_user_mode(live):
        return (f"CPU {task.running_on} is in user mode: these are the registers saved at "
                "its last kernel entry; gdb's registers are the live ones")
    if live.get(a.pc) is not None:
        return entry.pt_regs_pending(live[a.pc], task.running_on)
    return None


def user_regs(task: tasks.Task, cpu: int) -> UserRegs:
    """The decoded user pt_regs of `task` (KxError for a kernel thread)."""
    address, regs = tasks.user_pt_regs(task, cpu)
    a = arch.current()
    mode = a.user_mode(regs)
    abi = a.user_abi(mode)
    warnings = [w for w in (live_warning(task),) if w]
    own, own_warnings = a.user_regs_report(regs)
    pc = backend.registers(task.running_on).get(a.pc) if task.running_on is not None else None
    syscall = describe_syscall(a.saved_syscall_nr(regs, abi, pc), mode)
    args = [RegArg(hw, f, getattr(regs, f) & abi.mask) for hw, f in zip(abi.arg_regs, abi.ptregs_args)]
    return UserRegs(task={"address": task.address, "pid": task.pid, "comm": task.comm}, address=address,
                    mode=mode, regs={name: getattr(regs, name) for name in a.pt_regs_offsets},
                    syscall=syscall, nr_reg=abi.nr_reg, args=args if syscall else [], extra=own,
                    warnings=warnings + own_warnings)
