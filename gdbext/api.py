"""kx's Python API for scripted sessions: what the `kx` commands show, as
typed objects, plus hooks on system calls and a drgn Program of the guest.

Use it from gdb's Python (`python from gdbext import api`, or a script run
with `source script.py`) while the guest is stopped:

    from gdbext import api
    me = api.current()                      # the task on the selected vCPU
    print(me.pid, me.comm, me.state)
    for t in api.tasks():                   # every task, like `kx ps`
        print(t.pid, t.comm)

    @api.on_syscall("openat", comm="kxwork")
    def show(ev):
        print(ev.pid, ev.args[1].decoded)   # "/etc/kx-target"
        return False                        # True stops the guest here
    api.run(seconds=5)                      # or gdb's `continue`
    show.remove()

Every object has named fields and `to_dict()`, and that dict is exactly the
`--json` of the command that shows the same thing (docs/interface.md;
docs/api.md documents this module).  Errors are gdbext.errors.KxError with
a one-line message; NotSupported when the target's architecture has no such
thing (MSRs on arm64).  The public names are listed in __all__ and kept
stable: tests/unit/test_api.py fails if one disappears.
"""
from typing import Callable, Iterable, List, Optional, Union

from gdbext import arch as _arch
from gdbext import errors
from gdbext.arch.x86_64.cpu_reports import IstSlot, Msr, MsrReport, TssReport
from gdbext.errors import KxError, NotSupported
from gdbext.kernel import backend as _backend
from gdbext.kernel import events as _events
from gdbext.kernel import syscall_filter as _syscall_filter
from gdbext.kernel import syscall_hooks as _hooks
from gdbext.kernel import syscall_info as _syscall_info
from gdbext.kernel import task_info as _task_info
from gdbext.kernel import tasks as _tasks
from gdbext.kernel.events import Arg, SyscallEvent
from gdbext.kernel.syscall_hooks import RunResult, SyscallHook
from gdbext.kernel.syscall_info import Syscall, SyscallTable, TableCheck
from gdbext.kernel.task_info import FlagSet, RegArg, StackInfo, TaskInfo, TaskList, TaskSummary, UserRegs

__all__ = [
    # the stopped machine
    "current", "task", "tasks", "pt_regs", "msrs", "tss", "event", "syscalls", "syscall",
    # hooks
    "on_syscall", "hooks", "run",
    # scripts
    "script_main",
    # drgn
    "drgn_program",
    # the objects they return
    "TaskInfo", "TaskSummary", "TaskList", "FlagSet", "StackInfo", "UserRegs", "RegArg",
    "SyscallEvent", "Arg", "SyscallTable", "Syscall", "TableCheck", "MsrReport", "Msr", "TssReport",
    "IstSlot", "SyscallHook", "RunResult",
    # errors
    "KxError", "NotSupported",
]

TaskSpec = Union[None, int, str, TaskInfo, TaskSummary]


def _checked() -> None:
    """Inside gdb: the vmlinux was checked against the running kernel (and
    the KASLR slide applied); a mismatch refuses, as the commands do."""
    if not isinstance(_backend.machine(), _backend.GdbMachine):
        return   # a unit test's fake target
    from gdbext.kernel import kaslr
    mismatch = kaslr.mismatch_message()
    if mismatch:
        raise errors.KernelMismatch(mismatch)


def _spec(task: TaskSpec):
    """What tasks.find() takes: a pid, comm, address or None."""
    if isinstance(task, (TaskInfo, TaskSummary)):
        return task.address
    return task


# ---------------------------------------------------------------------------
# Tasks

def current(cpu: Optional[int] = None) -> TaskInfo:
    """The task running on `cpu` (default: the selected vCPU; gdb thread N
    is vCPU N-1), as the kernel's `current` sees it.  Same as `kx task
    --cpu N`.

    >>> api.current(1).comm
    'kxwork'
    """
    _checked()
    cpu = _backend.check_cpu(cpu)
    return _task_info.task_info(_tasks.read_task(_tasks.current(cpu), cpu=cpu), cpu, named=False)


def task(pid_or_comm_or_addr: TaskSpec = None, *, cpu: Optional[int] = None) -> TaskInfo:
    """One task by pid (int or decimal string; 0 is `cpu`'s idle task),
    comm ("kxwork"), task_struct address, or a TaskSummary; None is the
    current task.  Same as `kx task`.

    >>> t = api.task("kxwork")
    >>> t.pid, t.stack.size, t.flags.names
    (85, 16384, ['PF_FORKNOEXEC', 'PF_RANDOMIZE'])
    """
    _checked()
    cpu = _backend.check_cpu(cpu)
    spec = _spec(pid_or_comm_or_addr)
    return _task_info.task_info(_tasks.find(spec, cpu), cpu, named=spec is not None)


def tasks() -> TaskList:
    """Every task: processes, their threads and each CPU's idle task, read
    in two batched reads per task.  Same as `kx ps`.

    >>> sorted({t.comm for t in api.tasks() if not t.kernel_thread})
    ['init', 'kxwork']
    """
    _checked()
    return _task_info.task_list(_backend.check_cpu(None))


def pt_regs(task: TaskSpec = None, *, cpu: Optional[int] = None) -> UserRegs:
    """The user-mode registers `task` (as for task(); default: current)
    saved at the top of its kernel stack, decoded in its own ABI.  Same as
    `kx regs`.

    >>> r = api.pt_regs("hello64")
    >>> r.syscall["name"], [(a.reg, a.value) for a in r.args][:1]
    ('write', [('rdi', 1)])
    """
    _checked()
    cpu = _backend.check_cpu(cpu)
    return _task_info.user_regs(_tasks.find(_spec(task), cpu), cpu)


# ---------------------------------------------------------------------------
# The CPU

def msrs(cpu: Optional[int] = None, names: Optional[Iterable[Union[str, int]]] = None) -> MsrReport:
    """The syscall-path MSRs of `cpu` (or only `names`: "LSTAR",
    "IA32_STAR", 0xc0000082), each from the best source and checked against
    what the kernel programs.  Same as `kx msr`.  NotSupported off x86.

    >>> api.msrs(0, ["LSTAR"])["LSTAR"].symbol
    'entry_SYSCALL_64'
    """
    return _arch.current().read_msrs(cpu, list(names) if names is not None else None)


def tss(cpu: Optional[int] = None) -> TssReport:
    """The task state segment `cpu`'s TR selects: RSP0-2, IST1-7 and what
    they point at.  Same as `kx tss`.  NotSupported off x86.

    >>> api.tss(1).busy
    True
    """
    return _arch.current().read_tss(cpu)


# ---------------------------------------------------------------------------
# System calls

def event(cpu: Optional[int] = None) -> SyscallEvent:
    """The system call `cpu` (default: the selected vCPU) is stopped in,
    decoded: number, name, arguments by type, handler, dispatch.  Works at
    the first instruction of the entry stub and anywhere later in the call.
    Same as `kx event`.

    >>> ev = api.event()
    >>> ev.name, ev.args[1].decoded, ev.strace()
    ('openat', '"/etc/kx-target"', 'openat(AT_FDCWD, "/etc/kx-target", O_RDONLY, 000)')
    """
    _checked()
    cpu = _backend.check_cpu(cpu)
    return _events.decode(_events.View(cpu))


def syscalls(abi: str = "64", *, check: bool = False, cpu: Optional[int] = None) -> SyscallTable:
    """`abi`'s syscall table ("64", "32"/"ia32", "x32") as the kernel defines
    it, from the vmlinux file (no target needed); with `check`, compared
    with guest memory on `cpu` (a hooked table or switch).  Same as `kx
    syscalls`.

    >>> t = api.syscalls()
    >>> t.find("openat").handler == t.find(257).handler
    True
    """
    return _syscall_info.syscall_table(abi, check=check, cpu=cpu)


def syscall(name_or_nr: Union[str, int], abi: str = "64") -> Syscall:
    """One syscall with its signature (from ftrace metadata or the DWARF).
    Same as `kx syscalls NAME`.

    >>> api.syscall(257).name, api.syscall("write", abi="32").nr
    ('openat', 4)
    """
    return _syscall_info.syscall(name_or_nr, abi)


# ---------------------------------------------------------------------------
# Hooks

def on_syscall(names: Union[None, str, int, Iterable[Union[str, int]], Callable] = None, *,
               pid: Optional[int] = None, comm: Optional[str] = None, abi: Optional[str] = None,
               returns: bool = False):
    """Call a function on every matching system call: a decorator that
    registers it and gives back a SyscallHook (call `.remove()` to stop).

    The callback gets the decoded SyscallEvent (at the call's return, with
    `ev.ret`, when `returns`) and returns True to stop the guest there or
    False to let it go on.  `names` are syscall names or numbers (None:
    every call); `pid` matches pid or tgid; `abi` is "64" (default), "32"
    or "all".  Inside gdb the hook places gdb breakpoints at the entry stubs
    (the `kx break` machinery), so gdb's `continue` calls it; `run()` and
    `kx trace` on the loop engine call it too.  An exception in the
    callback is reported in one line and the guest goes on.

    >>> @api.on_syscall("execve", returns=True)
    ... def execs(ev):
    ...     print(ev.comm, ev.args[0].decoded, ev.ret)
    ...     return False
    >>> execs.remove()
    """
    if callable(names) and not isinstance(names, (str, int)):
        return on_syscall()(names)      # bare @on_syscall
    words = [] if names is None else [names] if isinstance(names, (str, int)) else list(names)
    flt = _syscall_filter.build([str(w) for w in words], abi or "64", pid, comm)

    def register(callback: Callable[[SyscallEvent], bool]) -> SyscallHook:
        if not callable(callback):
            raise errors.BadArgument(f"on_syscall needs a function, got {callback!r}")
        in_gdb = isinstance(_backend.machine(), _backend.GdbMachine)
        return _hooks.register(SyscallHook(flt, callback, returns), with_breakpoints=in_gdb)
    return register


def hooks() -> List[SyscallHook]:
    """The registered hooks, oldest first.

    >>> [h.name for h in api.hooks()]
    ['execs']
    """
    return _hooks.active()


def run(seconds: Optional[float] = None, engine: str = "auto") -> RunResult:
    """Let the guest run with the hooks armed until a callback returns True,
    `seconds` pass, or Ctrl-C; the guest is stopped afterwards.  Engine
    "plugin" (the default when `set kx trace-plugin SOCKET` names the
    kxtrace plugin) never stops the guest for a call, so a callback's True
    stops it shortly after that call; "loop" (the default on QEMU
    otherwise) is kx's breakpoint loop on the union of the hooks' filters
    and stops in the call; "gdb" is gdb's own `continue` (no `seconds`).

    >>> api.run(seconds=3).reason
    'time'
    """
    return _hooks.run(seconds, engine)


# ---------------------------------------------------------------------------
# Scripts

def script_main(main: Callable[[List[str]], object]) -> None:
    """Run `main(sys.argv[1:])` as a script `source`d in gdb should run:
    argparse's exit (--help, a bad argument) does not end gdb, and a
    KxError ends the script with one line instead of a traceback.

    >>> # at the end of a script, run with
    >>> # (gdb) python import sys; sys.argv = ["count", "--seconds", "5"]
    >>> # (gdb) source count.py
    >>> if __name__ == "__main__":
    ...     api.script_main(main)
    """
    import sys
    name = getattr(main, "__module__", None) or "script"
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass          # argparse has said why
    except KxError as exc:
        print(f"{sys.argv[0] if sys.argv and sys.argv[0] else name}: {exc}")


# ---------------------------------------------------------------------------
# drgn

def drgn_program(vmlinux: Optional[str] = None):
    """A drgn.Program of the stopped guest: memory through kx's machine
    layer (physical reads cached per stop, so valid until the guest runs),
    the kernel's vmcoreinfo and the KASLR slide, and the vmlinux's debug
    info.  Needs the optional drgn package (`pip install '.[drgn]'` or
    `./scripts/lab bootstrap --with-drgn`); without it, NotSupported says so.

    >>> from drgn.helpers.linux.pid import for_each_task
    >>> prog = api.drgn_program()
    >>> sorted(t.pid.value_() for t in for_each_task(prog))[:3]
    [1, 2, 3]
    """
    from gdbext.kernel import drgn_bridge
    _checked()
    return drgn_bridge.program(vmlinux)
