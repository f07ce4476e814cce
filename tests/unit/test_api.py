"""gdbext.api: its public names stay, every one is documented with an example,
and its objects (on the fake target of kernel/fake.py) carry the keys the
commands' JSON promises (docs/interface.md); the syscall hooks' registry
filters, reports a callback's exception in one line, and is fed by the loop
engine's tracer."""
import inspect
import struct

import pytest

from gdbext import api, errors
from gdbext.arch.x86_64 import X86
from gdbext.decoders.ptregs import encode_pt_regs
from gdbext.kernel import backend, syscall_hooks, syscall_trace
from gdbext.kernel.fake import FakeTarget

from .test_fake_target import (PER_CPU_BASE, PER_CPU_OFFSET, STACK, TASK, TASK_LAYOUT, TASK_SIZE, THREAD_SIZE,
                               USER_STRING, kernel_regs, syscalls_write_openat, task_bytes)

# The stable surface: removing or renaming one of these breaks scripts.
PUBLIC = {
    "current", "task", "tasks", "pt_regs", "msrs", "tss", "event", "syscalls", "syscall",
    "on_syscall", "hooks", "run", "script_main", "drgn_program",
    "TaskInfo", "TaskSummary", "TaskList", "FlagSet", "StackInfo", "UserRegs", "RegArg",
    "SyscallEvent", "Arg", "SyscallTable", "Syscall", "TableCheck", "MsrReport", "Msr", "TssReport",
    "IstSlot", "SyscallHook", "RunResult", "KxError", "NotSupported",
}
# Each function, and each record a script meets first, shows an example.
EXAMPLED = {"current", "task", "tasks", "pt_regs", "msrs", "tss", "event", "syscalls", "syscall",
            "on_syscall", "hooks", "run", "script_main", "drgn_program", "TaskInfo", "TaskSummary", "TaskList",
            "UserRegs", "SyscallTable", "Syscall", "MsrReport", "Msr", "TssReport", "SyscallHook"}


def test_public_names_stay():
    missing = PUBLIC - set(api.__all__)
    assert not missing, f"gdbext.api lost public names: {sorted(missing)}"
    for name in api.__all__:
        assert getattr(api, name) is not None


def test_public_names_are_documented_with_examples():
    for name in api.__all__:
        doc = inspect.getdoc(getattr(api, name))
        assert doc, f"gdbext.api.{name} has no docstring"
        if name in EXAMPLED:
            assert ">>>" in doc, f"gdbext.api.{name}'s docstring has no example"


# -- the fake target: pid 42 "hello64" in write(1, "hi\n", 3) on CPU 0 ------
LAYOUT = dict(TASK_LAYOUT, **{"thread.sp": (152, 8)})
SIGNAL_HEAD = 0x10


def target():
    pt = encode_pt_regs(orig_ax=1, di=1, si=USER_STRING, dx=3, ip=0x401234, cs=0x33, ss=0x2B,
                        flags=0x246, ax=-38)
    pt_addr = STACK + THREAD_SIZE - len(pt)
    return FakeTarget(
        X86, {0: kernel_regs(), 1: kernel_regs(cs=0x33)},
        memory={PER_CPU_OFFSET: struct.pack("<QQ", PER_CPU_BASE - 0x1000, PER_CPU_BASE - 0x1000),
                PER_CPU_BASE: struct.pack("<Q", TASK), TASK: task_bytes(42, "hello64", STACK),
                STACK: b"\x9d\x6e\xac\x57" + bytes(THREAD_SIZE - 4 - len(pt)), pt_addr: pt},
        user_memory={USER_STRING: b"hi\n\0"},
        symbols={"__per_cpu_offset": PER_CPU_OFFSET, "current_task": 0x1000, "init_task": TASK,
                 "__start_init_stack": 0xFFFFFFFF82800000, "__end_init_stack": 0xFFFFFFFF82800000 + THREAD_SIZE,
                 "do_syscall_64": 0xFFFFFFFF81A00000, "entry_SYSCALL_64": 0xFFFFFFFF81C00000},
        types={"struct task_struct": (TASK_SIZE, LAYOUT), "struct pt_regs": (168, {}),
               "struct signal_struct": (64, {"thread_head": (SIGNAL_HEAD, 16)})},
        syscalls=syscalls_write_openat("64"), version=(6, 1))


@pytest.fixture
def fake():
    with backend.installed(target()) as t:
        yield t
    syscall_hooks.remove_all()


def test_tasks_and_task_carry_the_commands_keys(fake):
    ps = api.tasks()
    assert [(t.pid, t.comm, t.state, t.cpu) for t in ps] == [(42, "hello64", "R", 0)]
    d = ps.to_dict()
    assert set(d) >= {"tasks", "count", "warnings"} and d["count"] == len(ps) == 1
    assert set(d["tasks"][0]) >= {"address", "pid", "tgid", "comm", "state", "cpu"}
    t = api.task(42)
    assert api.task("hello64") == t == api.current(0)
    assert (t.address, t.pid, t.comm, t.running_on, t.kernel_thread) == (TASK, 42, "hello64", 0, False)
    assert t.stack.base == STACK and t.stack.end_magic_ok is True and t.stack.size == THREAD_SIZE
    assert t.state == "R (running)" and t.flags.value == 0 and t.flags.names == []
    assert set(t.to_dict()) >= {"address", "pid", "tgid", "comm", "state", "flags", "ti_flags", "stack", "cpu"}
    assert t.to_dict()["stack"]["pt_regs"] == STACK + THREAD_SIZE - 168
    assert api.task(ps[0]) == t    # a TaskSummary picks its task
    with pytest.raises(errors.BadArgument, match="no task with pid 7"):
        api.task(7)


def test_pt_regs_in_the_tasks_abi(fake):
    r = api.pt_regs()
    assert (r.mode, r.address, r.nr_reg) == ("64", STACK + THREAD_SIZE - 168, "rax")
    assert r.syscall == {"nr": 1, "name": "write", "abi": "64", "x32": False}
    assert [(a.reg, a.value) for a in r.args[:3]] == [("rdi", 1), ("rsi", USER_STRING), ("rdx", 3)]
    d = r.to_dict()
    assert set(d) >= {"task", "address", "mode", "regs", "syscall"}
    assert d["regs"]["orig_ax"] == 1 and d["cs"]["selector"] == 0x33 and d["task"]["pid"] == 42


def test_event_is_the_decoded_call(fake):
    ev = api.event(0)
    assert (ev.name, ev.pid, ev.args[1].decoded) == ("write", 42, '"hi\\n"')
    assert ev.to_dict()["name"] == "write"
    assert ev.arg("buf").string == "hi\n" and ev.arg("fd").string is None and ev.arg("nosuch") is None
    with pytest.raises(errors.NotSupported, match="user mode"):
        api.event(1)


def test_msrs_and_tss_say_not_supported_off_x86(fake):
    from .test_fake_target import Toy
    with backend.installed(FakeTarget(Toy(), {0: {}})):
        with pytest.raises(api.NotSupported, match="x86"):
            api.msrs(0)
        with pytest.raises(api.NotSupported, match="x86"):
            api.tss()


# -- hooks --------------------------------------------------------------------
def test_hooks_filter_report_exceptions_and_remove(fake, capsys):
    seen = []

    @api.on_syscall("write", comm="hello64")
    def writes(ev):
        seen.append(ev.name)
        return ev.args[2].value == 3

    @api.on_syscall(["openat"], abi="64")
    def opens(ev):
        seen.append("openat?")

    @api.on_syscall
    def broken(ev):
        raise ValueError("a bug in the script")

    assert api.hooks() == [writes, opens, broken] and writes.breakpoints is None  # no gdb here
    ev = api.event(0)
    assert syscall_hooks.deliver(ev) is True          # writes asked to stop
    assert seen == ["write"] and broken.errors == 1 and broken.calls == 1
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "broken raised ValueError: a bug in the script" in line
    assert syscall_hooks.deliver(ev, returned=True) is False    # nobody wants returns
    union = syscall_hooks.union_filter(api.hooks())
    assert union.nrs["64"] is None and union.comm is None
    writes.remove()
    writes.remove()
    assert api.hooks() == [opens, broken]
    with pytest.raises(errors.BadArgument, match="unknown syscall"):
        api.on_syscall("nosuch")


def test_union_filter_of_named_hooks(fake):
    a = api.on_syscall("write", pid=42)(lambda ev: False)
    b = api.on_syscall("openat", pid=42, returns=True)(lambda ev: False)
    union = syscall_hooks.union_filter([a, b])
    assert union.abis == ["64"] and union.nrs == {"64": {1, 257}} and union.pid == 42
    assert b.wants(api.event(0), returned=True) is False and a.wants(api.event(0), returned=False)


class _Hit:
    """What machine/rsp_loop.py hands the tracer, over the fake's memory."""

    def __init__(self, t, pc, regs):
        self.cpu, self.pc, self.regs, self._t = 0, pc, regs, t

    def read(self, address, size):
        # One address space, as on the kernel page tables the loop reads through.
        try:
            return self._t.read_kernel(address, size)
        except errors.MemoryUnreadable:
            return self._t.read_user(address, size)


def test_the_loop_tracer_delivers_to_the_hooks(fake):
    got = []
    hook = api.on_syscall("write")(lambda ev: got.append(ev.strace()) or True)
    point = syscall_trace.TracePoint(0xFFFFFFFF81A00000, "entry", "64", "entry_SYSCALL_64", "orig_ax",
                                     "do_syscall_64")
    emitted = []
    tracer = syscall_trace.LoopTracer(hook.filter, False, [point], lambda e: emitted.append(e) or True)
    tracer.current_pointers = {0: PER_CPU_BASE}
    regs = kernel_regs(rip=point.address, rdi=STACK + THREAD_SIZE - 168, rsi=1)
    assert tracer.on_hit(_Hit(fake, point.address, regs)) is False   # the hook stopped the trace
    assert got == ['write(1, "hi\\n", 3)'] and emitted == []
