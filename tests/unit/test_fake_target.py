"""The kernel model on a fake target (kernel/fake.py): tasks, per-cpu data,
syscall events and the syscall-hit pipeline under plain pytest, on x86-64
and on a toy architecture that exists only here.

The toy proves the seam: it is one Arch subclass and nothing else, yet
events.decode() names its syscall, reads its arguments from its own
registers and pt_regs, and decodes a string argument by type."""
import struct

import pytest

from gdbext import arch, errors
from gdbext.arch.base import Arch, EntryStub, RawCall, SyscallAbi
from gdbext.arch.x86_64 import X86
from gdbext.decoders.ptregs import encode_pt_regs
from gdbext.kernel import backend, events, percpu, syscall_filter, syscall_hits, tasks
from gdbext.kernel.fake import FakeSignature, FakeSyscalls, FakeSyscallTable, FakeTarget

PER_CPU_OFFSET = 0xFFFFFFFF82000000
PER_CPU_BASE = 0xFFFF88801F400000
TASK = 0xFFFF888004000000
STACK = 0xFFFFC90000010000      # THREAD_SIZE-aligned
THREAD_SIZE = 0x4000
USER_STRING = 0x401000

# task_struct: only the members the model asks for, at made-up offsets.
TASK_LAYOUT = {
    "thread_info": (0, 24), "thread_info.flags": (0, 8), "thread_info.syscall_work": (8, 8),
    "thread_info.status": (16, 4), "thread_info.cpu": (20, 4), "__state": (24, 4),
    "stack": (32, 8), "flags": (44, 4), "on_cpu": (48, 4), "tasks.next": (64, 8), "mm": (80, 8),
    "active_mm": (88, 8), "exit_state": (96, 4), "pid": (104, 4), "tgid": (108, 4),
    "thread_node.next": (112, 8), "thread_node.prev": (120, 8), "comm": (128, 16), "signal": (144, 8),
}
TASK_SIZE = 160


def task_bytes(pid, comm, stack, mm=0x1000, cpu=0):
    raw = bytearray(TASK_SIZE)

    def put(member, value, fmt):
        struct.pack_into(fmt, raw, TASK_LAYOUT[member][0], value)
    put("thread_info.cpu", cpu, "<I")
    put("stack", stack, "<Q")
    put("tasks.next", TASK + TASK_LAYOUT["tasks.next"][0], "<Q")
    put("mm", mm, "<Q")
    put("active_mm", mm, "<Q")
    put("pid", pid, "<i")
    put("tgid", pid, "<i")
    raw[128:128 + len(comm)] = comm.encode()
    return bytes(raw)


def syscalls_write_openat(abi):
    return FakeSyscalls(
        tables={abi: FakeSyscallTable({1: "write", 257: "openat"}, 400)},
        handlers={(abi, 1): (0xFFFFFFFF81300000, "__x64_sys_write")},
        signatures={(abi, 1): FakeSignature([("unsigned int", "fd"), ("const char *", "buf"),
                                             ("size_t", "count")])})


def x86_target(regs, pt_regs):
    """CPU 0 in do_syscall_64 (pt_regs written) for `pid 42 "hello64"`."""
    pt_addr = STACK + THREAD_SIZE - len(pt_regs)
    return FakeTarget(
        X86, {0: regs},
        memory={PER_CPU_OFFSET: struct.pack("<Q", PER_CPU_BASE - 0x1000),
                PER_CPU_BASE: struct.pack("<Q", TASK),
                TASK: task_bytes(42, "hello64", STACK),
                STACK: b"\x9d\x6e\xac\x57" + bytes(THREAD_SIZE - 4 - len(pt_regs)),
                pt_addr: pt_regs},
        user_memory={USER_STRING: b"hi\n\0"},
        symbols={"__per_cpu_offset": PER_CPU_OFFSET, "current_task": 0x1000,
                 "__start_init_stack": 0xFFFFFFFF82800000, "__end_init_stack": 0xFFFFFFFF82800000 + THREAD_SIZE,
                 "do_syscall_64": 0xFFFFFFFF81A00000, "entry_SYSCALL_64": 0xFFFFFFFF81C00000},
        types={"struct task_struct": (TASK_SIZE, TASK_LAYOUT), "struct pt_regs": (168, {})},
        syscalls=syscalls_write_openat("64"))


def kernel_regs(**extra):
    regs = {n: 0 for n in X86.general_regs + X86.system_regs}
    regs.update(cs=0x10, rip=0xFFFFFFFF81A00010, rsp=STACK + 0x3E00, cr0=0x80050033)
    regs.update(extra)
    return regs


def test_current_task_and_task_fields_from_per_cpu_data():
    target = x86_target(kernel_regs(), encode_pt_regs(orig_ax=1))
    with backend.installed(target):
        assert percpu.offset(0) == PER_CPU_BASE - 0x1000
        assert tasks.current(0) == TASK
        task = tasks.read_task(TASK, detail=False)
        assert (task.pid, task.comm, task.stack, task.running_on) == (42, "hello64", STACK, 0)
        assert tasks.thread_size() == THREAD_SIZE
        assert tasks.stack_end_ok(task) is True
        assert tasks.pt_regs_address(task) == STACK + THREAD_SIZE - 168


def test_x86_event_in_do_syscall_64_reads_pt_regs():
    pt = encode_pt_regs(orig_ax=1, di=1, si=USER_STRING, dx=3, ip=0x401234, cs=0x33, flags=0x246, ax=-38)
    with backend.installed(x86_target(kernel_regs(), pt)):
        event = events.decode(events.View(0))
    assert (event.pid, event.comm, event.abi, event.nr, event.name) == (42, "hello64", "64", 1, "write")
    assert event.source == "pt_regs" and event.entry == "entry_SYSCALL_64"
    assert [(a.reg, a.value) for a in event.args] == [("rdi", 1), ("rsi", USER_STRING), ("rdx", 3)]
    assert event.args[1].decoded == '"hi\\n"'
    assert event.handler == {"address": 0xFFFFFFFF81300000, "symbol": "__x64_sys_write"}
    assert event.return_ip == 0x401234


def test_x86_event_refuses_an_exception_frame_and_user_mode():
    with backend.installed(x86_target(kernel_regs(), encode_pt_regs(orig_ax=-1))):
        with pytest.raises(errors.KxError, match="orig_ax is -1"):
            events.decode(events.View(0))
    with backend.installed(x86_target(kernel_regs(cs=0x33), encode_pt_regs(orig_ax=1))):
        with pytest.raises(errors.NotSupported, match="user mode"):
            events.decode(events.View(0))


def test_x86_number_past_the_table_returns_enosys():
    with backend.installed(x86_target(kernel_regs(), encode_pt_regs(orig_ax=1000, cs=0x33))):
        event = events.decode(events.View(0))
    assert event.name is None and event.ret == -38 and "NR_syscalls" in event.notes[-1]


def test_the_pipeline_filters_decodes_and_pairs_returns():
    pt = encode_pt_regs(orig_ax=1, di=1, si=USER_STRING, dx=3, cs=0x33)
    with backend.installed(x86_target(kernel_regs(), pt)):
        flt = syscall_filter.build(["write"], "64", comm="hello64")
        hits = syscall_hits.SyscallHits(flt, want_return=True)
        assert not hits.wants("64", 257, lambda: (42, 42, "hello64"))
        assert not hits.wants("64", 1, lambda: (42, 42, "other"))
        assert hits.skipped == 2
        assert hits.wants("64", 1, lambda: (42, 42, "hello64"))
        state = (0, (("rip", 0x1000), ("rax", 1)))
        event = hits.entered(events.decode(events.View(0)), state)
        assert hits.unreturned == 1
        # The same entry reported again (the machine in the same state) is
        # not a second call; any other state is.
        assert hits.repeats_parked_entry(TASK, state)
        assert not hits.repeats_parked_entry(TASK, (1,) + state[1:])
        assert not hits.repeats_parked_entry(TASK + 8, state)
        assert hits.returned(TASK + 8, lambda: 0) is None
        back = hits.returned(TASK, lambda: (-14) & (1 << 64) - 1)
        assert not hits.repeats_parked_entry(TASK, state)
        assert back is event and back.ret == -14 and back.strace() == 'write(1, "hi\\n", 3) = -14 EFAULT'
        # The x32 bit is split off before the filter compares (unistd.h).
        assert syscall_hits.number_for_filter("64", 0x40000001) == 1
        assert syscall_hits.number_for_filter("32", 0xFFFFFFFF) == -1


def test_snapshot_round_trip():
    target = x86_target(kernel_regs(), encode_pt_regs(orig_ax=1))
    again = FakeTarget.from_snapshot(target.to_snapshot(), syscalls=target.syscalls)
    with backend.installed(again):
        assert tasks.current(0) == TASK


# -- a toy architecture: nr in r7, arguments in r0-r5, 8-byte pt_regs slots --
TOY_REGS = tuple(f"r{i}" for i in range(16)) + ("pc", "sp", "mode")
TOY_PT = ("r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "pc", "sp", "orig_r0", "syscallno")
TOY_ABI = SyscallAbi(name="toy", aliases=("t",), label="toy", bits=32, nr_reg="r7",
                     arg_regs=("r0", "r1", "r2", "r3", "r4", "r5"), ptregs_nr="syscallno",
                     ptregs_args=("orig_r0", "r1", "r2", "r3", "r4", "r5"), ptregs_ret="r0",
                     stubs=(EntryStub("vector_toy", "swi", ("toy_syscall",)),),
                     table="toy_call_table", handler_prefixes=("sys_",))


class _ToyPtRegs:
    def __init__(self, raw):
        for i, name in enumerate(TOY_PT):
            setattr(self, name, struct.unpack_from("<q", raw, 8 * i)[0])


class Toy(Arch):
    name = "toy"
    pc, sp = "pc", "sp"
    general_regs = TOY_REGS
    abis = (TOY_ABI,)
    pointer_size = 4
    pt_regs_size = 8 * len(TOY_PT)
    pt_regs_offsets = {n: 8 * i for i, n in enumerate(TOY_PT)}
    kernel_space_start = 0xC0000000
    default_thread_size = 0x2000

    def in_user_mode(self, regs):
        return regs["mode"] == 0x10

    def decode_pt_regs(self, raw):
        return _ToyPtRegs(raw)

    def pt_regs_pending(self, stub, regs, stack, pt_regs):
        return regs["pc"] == 0xC0008000   # the vector's first instruction

    def live_call(self, stub, regs, view):
        return RawCall("toy", regs["r7"], [(r, regs[r]) for r in TOY_ABI.arg_regs], regs["lr"] if "lr" in regs
                       else None, stub=stub.name)

    def call_from_pt_regs(self, pt, stub, pc, task):
        if pt.syscallno < 0:
            raise errors.KxError("not a syscall")
        args = [(r, getattr(pt, f) & TOY_ABI.mask) for r, f in zip(TOY_ABI.arg_regs, TOY_ABI.ptregs_args)]
        return RawCall("toy", pt.syscallno, args, pt.pc, stub=stub.name if stub else "vector_toy")

    def current_task_pointer(self, cpu):
        return 0xC1000000 + 4 * cpu


TOY_TASK, TOY_STACK = 0xC2000000, 0xC3000000


def toy_target(pc, **regs):
    toy = Toy()
    pt = b"".join(struct.pack("<q", v) for v in (0x8000, 0, 0, 0, 0, 0, 0, 5, 0x10474, 0, 0x8000, 5))
    layout = {m: o for m, o in TASK_LAYOUT.items() if not m.startswith("thread_info")}
    all_regs = {n: 0 for n in TOY_REGS}
    all_regs.update(pc=pc, mode=0x13, **regs)
    return toy, FakeTarget(
        toy, {0: all_regs},
        memory={0xC1000000: struct.pack("<Q", TOY_TASK), TOY_TASK: task_bytes(7, "toyprog", TOY_STACK),
                TOY_STACK: bytes(0x2000 - len(pt)), TOY_STACK + 0x2000 - len(pt): pt},
        user_memory={0x8000: b"/etc/toy".ljust(0x1000, b"\0")},
        symbols={"vector_toy": 0xC0008000, "toy_syscall": 0xC0009000},
        types={"struct task_struct": (TASK_SIZE, layout)},
        syscalls=FakeSyscalls(tables={"toy": FakeSyscallTable({5: "open"}, 400)},
                              signatures={("toy", 5): FakeSignature([("const char *", "filename"),
                                                                     ("int", "flags"), ("umode_t", "mode")])}))


@pytest.mark.parametrize("where", ["vector", "c"])
def test_a_fake_architecture_drives_kx_events_decoding(where):
    if where == "vector":
        toy, target = toy_target(0xC0008000, r0=0x8000, r1=0, r2=0, r7=5)
    else:
        toy, target = toy_target(0xC0009010)
    with backend.installed(target):
        assert arch.current() is toy
        event = events.decode(events.View(0))
        assert arch.parse_abi("t")[0] is TOY_ABI
    assert (event.abi, event.nr, event.name, event.pid, event.comm) == ("toy", 5, "open", 7, "toyprog")
    assert event.source == ("registers" if where == "vector" else "pt_regs")
    assert event.entry == "vector_toy"
    assert [a.reg for a in event.args] == ["r0", "r1", "r2"]
    assert event.args[0].decoded == '"/etc/toy"'
    assert arch.current().name == "x86_64"  # restored


def test_parse_abi_words():
    with backend.installed(x86_target(kernel_regs(), encode_pt_regs(orig_ax=1))):
        assert [a.name for a in arch.parse_abi("ia32")] == ["32"]
        assert [a.name for a in arch.parse_abi("all", allow_all=True)] == ["64", "32"]
        assert [a.name for a in arch.parse_abi("x32")] == ["x32"]
        with pytest.raises(errors.BadArgument, match="--abi must be 64, 32 or all"):
            arch.parse_abi("x32", allow_all=True, hidden=False)


def test_pt_regs_at_do_syscall_64_in_either_argument_order():
    """6.1: do_syscall_64(struct pt_regs *regs, int nr); 5.10: (nr, regs)."""
    pt = 0xFFFFC90000013F58
    assert X86.c_entry_pt_regs("do_syscall_64", {"rdi": pt, "rsi": 39}) == pt
    assert X86.c_entry_pt_regs("do_syscall_64", {"rdi": 39, "rsi": pt}) == pt
    assert X86.c_entry_pt_regs("do_int80_syscall_32", {"rdi": pt, "rsi": 0}) == pt
