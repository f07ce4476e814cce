"""Tasks: current, the task list, task_struct fields, stacks and pt_regs.

Everything is read through StructReader (a few batched reads per task) and
cached per stop by the backend (kernel/backend.py).  Where `current` lives
is the architecture's (gdbext/arch).  Version differences are handled here:
- task_struct.state was renamed __state in 5.14 (2f064a59a11f).
- thread_info.cpu moved from task_struct into thread_info in 5.16 for
  THREAD_INFO_IN_TASK arches (bcf9033e5449).
- thread_info lives inside task_struct with CONFIG_THREAD_INFO_IN_TASK (x86
  since 4.9), otherwise at the bottom of the stack.
- task_struct.thread_group went away in 6.7; signal->thread_head +
  thread_node (present since 3.14) is used for threads in every version.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional

from gdbext import arch, errors
from gdbext.kernel import backend, percpu, symbols, types
from gdbext.kernel.structs import Member, StructReader

PF_IDLE = 0x00000002      # include/linux/sched.h
PF_KTHREAD = 0x00200000
STACK_END_MAGIC = 0x57AC6E9D  # include/uapi/linux/magic.h
_MAX_TASKS = 1 << 17      # a corrupted list must not loop forever

# The members `kx ps` needs; they sit in two clusters of task_struct (the
# head with thread_info, and pid/comm/tasks), so this is two reads per task.
_LIST_MEMBERS = (
    Member("ti_flags", ("thread_info.flags",), required=False),
    Member("syscall_work", ("thread_info.syscall_work",), required=False),  # 5.11+
    Member("ti_status", ("thread_info.status",), required=False),
    Member("cpu", ("thread_info.cpu", "cpu"), "u", required=False),
    Member("state", ("__state", "state")),
    Member("stack", ("stack",)),
    Member("flags", ("flags",)),
    Member("on_cpu", ("on_cpu",), required=False),
    Member("tasks", ("tasks.next",)),
    Member("mm", ("mm",)),
    Member("active_mm", ("active_mm",)),
    Member("exit_state", ("exit_state",)),
    Member("pid", ("pid",), "s"),
    Member("tgid", ("tgid",), "s"),
    Member("thread_node_next", ("thread_node.next",)),
    Member("thread_node_prev", ("thread_node.prev",)),
    Member("comm", ("comm",), "cstr"),
    Member("signal", ("signal",)),
)
# `kx task` adds the saved context of the thread (struct thread_struct).
_DETAIL_MEMBERS = _LIST_MEMBERS + (
    Member("thread_sp", ("thread.sp", "thread.cpu_context.sp")),   # x86, arm64
    Member("fsbase", ("thread.fsbase",), required=False),   # 4.14+
    Member("gsbase", ("thread.gsbase",), required=False),
    Member("real_parent", ("real_parent",), required=False),
)
LIST_READER = StructReader("struct task_struct", _LIST_MEMBERS)
DETAIL_READER = StructReader("struct task_struct", _DETAIL_MEMBERS)
# Without THREAD_INFO_IN_TASK the flags are in struct thread_info on the stack.
_STACK_THREAD_INFO = StructReader("struct thread_info", (
    Member("ti_flags", ("flags",)),
    Member("syscall_work", ("syscall_work",), required=False),
    Member("ti_status", ("status",), required=False),
    Member("cpu", ("cpu",), required=False),
))


@dataclass
class Task:
    address: int
    pid: int
    tgid: int
    comm: str
    state: int
    exit_state: int
    flags: int
    ti_flags: Optional[int]
    syscall_work: Optional[int]
    ti_status: Optional[int]
    cpu: Optional[int]          # the CPU it last ran on (thread_info.cpu)
    on_cpu: Optional[int]
    stack: int
    mm: int
    active_mm: int
    signal: int
    tasks_next: int
    thread_node_next: int
    thread_node_prev: int
    thread_sp: Optional[int] = None
    fsbase: Optional[int] = None
    gsbase: Optional[int] = None
    real_parent: Optional[int] = None
    running_on: Optional[int] = None  # the CPU whose current it is, if any

    @property
    def is_kernel_thread(self) -> bool:
        return bool(self.flags & PF_KTHREAD) or self.mm == 0

    @property
    def is_idle(self) -> bool:
        return bool(self.flags & PF_IDLE) and self.pid == 0


def _pointer(address: int, cpu=None) -> int:
    size = arch.current().pointer_size
    return int.from_bytes(backend.read_kernel(address, size, cpu), "little")


# ---------------------------------------------------------------------------
# Layout facts

def thread_info_in_task() -> bool:
    """CONFIG_THREAD_INFO_IN_TASK: task_struct starts with struct thread_info."""
    return types.has_member("struct task_struct", "thread_info")


def thread_size() -> int:
    """THREAD_SIZE, from the linker symbols around init_task's stack: the
    script places THREAD_SIZE bytes between them (include/asm-generic/
    vmlinux.lds.h; __start_init_task/__end_init_task up to 6.1, renamed
    __start_init_stack/__end_init_stack later); without them, the
    architecture's usual value."""
    table = symbols.table()
    for start, end in (("__start_init_stack", "__end_init_stack"),
                       ("__start_init_task", "__end_init_task")):
        a, b = table.lookup(start), table.lookup(end)
        if a is not None and b is not None and 0 < b - a <= 1 << 20:
            return b - a
    return arch.current().default_thread_size


def top_of_stack_padding() -> int:
    return arch.current().top_of_stack_padding(symbols.lookup)


def pt_regs_size() -> int:
    return types.sizeof("struct pt_regs") if types.has("struct pt_regs") else arch.current().pt_regs_size


def stack_top(task: Task) -> int:
    """task_top_of_stack(): the end of the user pt_regs (processor.h)."""
    return task.stack + thread_size() - top_of_stack_padding()


def pt_regs_address(task: Task) -> int:
    """task_pt_regs(): the pt_regs just below the stack top."""
    return pt_regs_address_for_stack(task.stack)


def pt_regs_address_for_stack(stack: int) -> int:
    return stack + pt_regs_offset_in_stack()


def pt_regs_offset_in_stack() -> int:
    """Where the user pt_regs lie from the stack's lowest address."""
    return thread_size() - top_of_stack_padding() - pt_regs_size()


def stack_end_ok(task: Task, cpu=None) -> Optional[bool]:
    """end_of_stack() holds STACK_END_MAGIC unless the stack overflowed
    (kernel/fork.c set_task_stack_end_magic).  The end is the stack's lowest
    word with THREAD_INFO_IN_TASK, else the word after struct thread_info."""
    end = task.stack
    if not thread_info_in_task():
        end += types.sizeof("struct thread_info")
    try:
        return int.from_bytes(backend.read_kernel(end, 4, cpu), "little") == STACK_END_MAGIC
    except errors.MemoryUnreadable:
        return None


def stack_facts(task: Task, cpu=None) -> Dict:
    """The task's kernel stack: base, top, size, user pt_regs, whether
    STACK_END_MAGIC is intact, and warnings when a check fails."""
    top = stack_top(task)
    facts = {"base": task.stack, "top": top, "size": thread_size(),
             "pt_regs": None if task.is_kernel_thread else pt_regs_address(task),
             "end_magic_ok": stack_end_ok(task, cpu), "warnings": []}
    if facts["end_magic_ok"] is False:
        facts["warnings"].append("STACK_END_MAGIC is overwritten: the kernel stack overflowed")
    if task.running_on is not None:
        # The CPU's own idea of the stack top (x86: cpu_current_top_of_stack,
        # set in __switch_to) must be ours; else THREAD_SIZE/padding are wrong.
        live_top = arch.current().cpu_stack_top(task.running_on)
        if live_top is not None and live_top != top:
            facts["warnings"].append(f"computed stack top {top:#x} differs from the CPU's top_of_stack "
                                     f"{live_top:#x}")
    return facts


def task_warnings(task: Task, cpu: int, named: bool) -> List[str]:
    """What is odd about `task` (asked for by name/pid/address if `named`,
    else `cpu`'s current): current and the runqueue disagree, or a named
    task is not on the task list."""
    warnings = []
    check = current_disagreement(task.running_on if task.running_on is not None else cpu)
    if check and (not named or task.running_on is not None):
        warnings.append(check)
    if named and not task.is_idle and not on_task_list(task, cpu):
        warnings.append("this task is not on init_task.tasks (exiting, or not a task_struct?)")
    return warnings


def thread_info_address(task: Task) -> int:
    return task.address if thread_info_in_task() else task.stack


# ---------------------------------------------------------------------------
# current

def current_pointer(cpu: int) -> int:
    """Address of `cpu`'s per-cpu pointer to its current task (where it
    lives is the architecture's and the kernel version's business)."""
    return arch.current().current_task_pointer(cpu)


def current(cpu: int) -> int:
    """Address of the task running on `cpu`, as the kernel's `current` sees it."""
    return backend.cached(("current", cpu), lambda: arch.current().current_task(
        cpu, backend.registers(cpu), lambda address: _pointer(address, cpu)))


def runqueue_curr(cpu: int) -> Optional[int]:
    """runqueues[cpu].curr, the scheduler's own idea of the running task."""
    if symbols.lookup("runqueues") is None or not types.has_member("struct rq", "curr"):
        return None
    return percpu.read_ulong("runqueues", cpu, "curr", "struct rq")


def runqueue_idle(cpu: int) -> Optional[int]:
    if symbols.lookup("runqueues") is None or not types.has_member("struct rq", "idle"):
        return None
    return percpu.read_ulong("runqueues", cpu, "idle", "struct rq")


def current_disagreement(cpu: int) -> Optional[str]:
    """A warning when `current` and runqueues[cpu].curr differ.  They
    legitimately do for a few instructions inside __schedule() /
    context_switch(): rq->curr changes before the stack switch."""
    cur = current(cpu)
    rq = runqueue_curr(cpu)
    if rq is None or rq == cur:
        return None
    return (f"CPU {cpu}: current is {cur:#x} but runqueues[{cpu}].curr is {rq:#x} "
            "(normal only in the middle of a context switch)")


def running_map() -> Dict[int, int]:
    """{task address: cpu} for every vCPU's current task."""
    def build():
        out = {}
        for cpu in backend.cpus():
            out.setdefault(current(cpu), cpu)
        return out
    return backend.cached(("running-map",), build)


# ---------------------------------------------------------------------------
# Reading tasks

def read_task(address: int, detail: bool = True, cpu=None) -> Task:
    """One task_struct, read in a few batched reads."""
    key = ("task", address, detail)

    def read():
        reader = DETAIL_READER if detail else LIST_READER
        try:
            v = reader.read(address, cpu)
        except errors.MemoryUnreadable:
            raise errors.MemoryUnreadable(address, types.sizeof("struct task_struct"),
                                          "not a readable task_struct") from None
        if not thread_info_in_task() and v["stack"]:
            try:
                v.update({k: x for k, x in _STACK_THREAD_INFO.read(v["stack"], cpu).items() if x is not None})
            except errors.MemoryUnreadable:
                pass
        task = Task(address=address, pid=v["pid"], tgid=v["tgid"], comm=v["comm"],
                    state=v["state"], exit_state=v["exit_state"], flags=v["flags"],
                    ti_flags=v["ti_flags"], syscall_work=v["syscall_work"], ti_status=v["ti_status"],
                    cpu=v["cpu"], on_cpu=v["on_cpu"], stack=v["stack"], mm=v["mm"],
                    active_mm=v["active_mm"], signal=v["signal"], tasks_next=v["tasks"],
                    thread_node_next=v["thread_node_next"], thread_node_prev=v["thread_node_prev"],
                    thread_sp=v.get("thread_sp"), fsbase=v.get("fsbase"), gsbase=v.get("gsbase"),
                    real_parent=v.get("real_parent"))
        task.running_on = running_map().get(address)
        return task
    return backend.cached(key, read)


def all_tasks(cpu=None) -> List[Task]:
    """Every task: the processes on init_task.tasks, each one's threads
    (signal->thread_head), and the idle tasks of CPUs other than 0, which
    are never on the task list (copy_process() links only pid != 0)."""
    def walk():
        init = symbols.address("init_task")
        off_tasks = LIST_READER.offset("tasks")
        off_node = LIST_READER.offset("thread_node_next")
        off_head = types.offsetof("struct signal_struct", "thread_head")
        out: List[Task] = []
        seen = set()

        def add(address):
            if address in seen or len(seen) >= _MAX_TASKS:
                return None
            seen.add(address)
            t = read_task(address, detail=False, cpu=cpu)
            out.append(t)
            return t

        leader_addr = init
        while True:
            leader = add(leader_addr)
            if leader is None:
                break
            head = leader.signal + off_head if leader.signal else None
            node = leader_addr + off_node
            if head and not (leader.thread_node_next == head and leader.thread_node_prev == head):
                nxt = leader.thread_node_next
                while nxt and nxt != node and len(seen) < _MAX_TASKS:
                    if nxt == head:  # skip the list head in signal_struct
                        nxt = _pointer(head, cpu)
                        continue
                    t = add(nxt - off_node)
                    if t is None:
                        break
                    nxt = t.thread_node_next
            leader_addr = leader.tasks_next - off_tasks
            if leader_addr == init:
                break
        for c in range(_nr_cpus()):
            idle = runqueue_idle(c)
            if idle and idle not in seen:
                add(idle)
        return out
    return backend.cached(("all-tasks",), walk)


def _nr_cpus() -> int:
    try:
        return percpu.nr_cpu_ids()
    except errors.KxError:
        return len(backend.cpus())


def idle_task(cpu: int) -> int:
    idle = runqueue_idle(cpu)
    if idle:
        return idle
    if cpu == 0:
        return symbols.address("init_task")
    raise errors.MissingSymbol("runqueues (struct rq.idle)")


def looks_like_address(value: int) -> bool:
    return value >= arch.current().kernel_space_start


def find(spec, cpu: int) -> Task:
    """A task by pid (decimal), address (a kernel pointer) or comm; None or
    "" means the current task of `cpu`."""
    if spec is None or spec == "":
        return read_task(current(cpu), cpu=cpu)
    value = None
    if isinstance(spec, int):
        value = spec
    else:
        try:
            value = int(str(spec), 0)
        except ValueError:
            value = None
    if value is not None:
        if value < 0:
            raise errors.BadArgument(f"pid must be >= 0, got {value}")
        if looks_like_address(value):
            task = read_task(value, cpu=cpu)
            _check_plausible(task)
            return task
        if value == 0:  # every CPU has an idle task with pid 0
            return read_task(idle_task(cpu), cpu=cpu)
        if value > 0x3FFFFFFF:  # PID_MAX_LIMIT is 4M; this is neither pid nor kernel address
            raise errors.BadArgument(f"{value:#x} is neither a pid nor a kernel address")
        for t in all_tasks(cpu):
            if t.pid == value:
                return read_task(t.address, cpu=cpu)
        raise errors.BadArgument(f"no task with pid {value}")
    name = str(spec)
    hits = [t for t in all_tasks(cpu) if t.comm == name]
    if not hits:
        raise errors.BadArgument(f"no task named {name!r} (comm is at most 15 characters)")
    leaders = {t.tgid for t in hits}
    if len(hits) > 1 and len(leaders) > 1:
        pids = ", ".join(str(t.pid) for t in hits[:10])
        raise errors.BadArgument(f"{len(hits)} tasks are named {name!r} (pids {pids}): give a pid")
    best = next((t for t in hits if t.pid == t.tgid), hits[0])
    return read_task(best.address, cpu=cpu)


def _check_plausible(task: Task) -> None:
    """An address that is not a task_struct gives garbage; refuse obvious ones."""
    if not looks_like_address(task.stack) or task.stack & 0xFFF or task.pid < 0 or task.tgid < 0:
        raise errors.BadArgument(f"{task.address:#x} does not look like a task_struct "
                                 f"(stack {task.stack:#x}, pid {task.pid})")


def on_task_list(task: Task, cpu=None) -> bool:
    return any(t.address == task.address for t in all_tasks(cpu))


# ---------------------------------------------------------------------------
# pt_regs

def user_pt_regs(task: Task, cpu=None):
    """(address, PtRegs) of the user-mode registers saved at the top of the
    task's kernel stack; a kernel thread has none."""
    if task.is_kernel_thread:
        what = "an idle task" if task.is_idle else "a kernel thread"
        raise errors.KxError(f"pid {task.pid} ({task.comm}) is {what}: it has no user-mode pt_regs")
    address = pt_regs_address(task)
    a = arch.current()
    return address, a.decode_pt_regs(backend.read_kernel(address, a.pt_regs_size, cpu))
