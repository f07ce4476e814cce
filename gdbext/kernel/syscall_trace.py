"""Syscall tracing on kx's own breakpoint loop (target/rsp.py).

Where the loop breaks, and why not at the entry stubs `kx break` uses:

- entry: the C function each entry stub calls with pt_regs (do_syscall_64,
  int80_emulation or do_int80_syscall_32, do_SYSENTER_32,
  do_fast_syscall_32).  By then swapgs and the CR3 switch are done, so the
  loop's plain `m` packets read kernel memory (at entry_SYSCALL_64 under
  KPTI every read would be a page walk through physical memory), pt_regs is
  complete (%rdi points at it), and the first instruction is one the loop
  can emulate (endbr64 / a ftrace NOP / push), so a hit costs one debug stop
  instead of two.
- return: just after that call in the stub, where %rsp is pt_regs and
  pt_regs->ax holds the return value (the same place `kx break --return`
  uses).

Everything here reads the guest only through the loop's Hit (its packets),
never through gdb or gdbext.machine: gdb's caches are stale while the loop
owns the connection.  What must come from gdb (per-cpu offsets, the symbols
and types behind the decoder) is resolved in `prepare()`, before the loop.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List

from gdbext import errors
from gdbext.decoders.ptregs import PT_REGS_OFFSETS, PT_REGS_SIZE
from gdbext.kernel import entry, events, symbols, syscall_filter, syscalls, tasks
from gdbext import machine

# Cap on entries waiting for their return (a task killed mid-call never returns).
_MAX_PENDING = 4096


@dataclass(frozen=True)
class TracePoint:
    address: int
    kind: str       # "entry" or "return"
    abi: str        # "64" or "32"
    stub: str       # the entry stub this point belongs to
    # int80_emulation() is entered with orig_ax = -1 and the number in ax
    # (6.1.66+ / 6.7+, arch/x86/entry/common.c): it stores orig_ax itself.
    nr_in_ax: bool = False
    # Shared by two stubs: which one is told by the return address at [rsp].
    shared: bool = False


# do_SYSENTER_32() ends in `return do_fast_syscall_32(regs)` (common.c, 6.1
# and 6.12), so one sysenter passes through both C functions: the loop breaks
# only in do_fast_syscall_32 and tells the two compat stubs apart there.
_CALLS_ON = {"do_SYSENTER_32": "do_fast_syscall_32"}


def trace_points(flt: syscall_filter.SyscallFilter, want_return: bool) -> List[TracePoint]:
    """The loop's breakpoints for `flt`: the C entry function of every stub
    this kernel has for the filter's ABIs (one per syscall: see _CALLS_ON),
    and with `want_return` the instruction after each stub's call into C."""
    points: Dict[int, TracePoint] = {}
    for abi in flt.abis:
        for stub, _ in syscall_filter.entry_locations(abi):
            for callee in entry.SYSCALL_ENTRIES.get(stub, ()):
                address = symbols.lookup(callee)
                if address is None:
                    continue
                inner = _CALLS_ON.get(callee)
                if inner is not None and symbols.lookup(inner) is not None:
                    callee, address = inner, symbols.lookup(inner)
                shared = address in points or callee in _CALLS_ON.values()
                points[address] = TracePoint(address, "entry", abi, stub, callee == "int80_emulation", shared)
                break
            else:
                raise errors.MissingSymbol(" / ".join(entry.SYSCALL_ENTRIES.get(stub, (stub,))))
        if want_return:
            for stub, address in syscall_filter.return_locations(abi):
                points.setdefault(address, TracePoint(address, "return", abi, stub))
    return list(points.values())


def stub_of_shared_point(hit) -> str:
    """At do_fast_syscall_32: entry_SYSENTER_compat if it was reached
    through do_SYSENTER_32 (a call or a tail jump), else entry_SYSCALL_compat."""
    caller = int.from_bytes(hit.read(hit.regs["rsp"], 8), "little")
    found = symbols.table().describe(caller)
    if found is not None and found[0] == "do_SYSENTER_32":
        return "entry_SYSENTER_compat"
    return entry.entry_of(caller) or "entry_SYSCALL_compat"


class HitView(events.View):
    """events.View over one loop hit: registers from its `g`, memory through
    its `m` packets (the vCPU is on the kernel CR3 at every trace point, and
    the kernel page tables map user space too)."""

    def __init__(self, hit, current_pointers: Dict[int, int]):
        super().__init__(hit.cpu)
        self.hit = hit
        self._current_pointers = current_pointers

    def regs(self):
        return self.hit.regs

    def read_kernel(self, address, size):
        return self.hit.read(address, size)

    def read_user(self, address, size):
        return self.hit.read(address, size)

    def current_task(self):
        return int.from_bytes(self.hit.read(self._current_pointers[self.cpu], 8), "little")


class LoopTracer:
    """The loop's callback: filter, decode, pair entries with returns, and
    hand each wanted event to `emit(event) -> bool` (False ends the trace)."""

    def __init__(self, flt, want_return: bool, points: List[TracePoint],
                 emit: Callable[[events.SyscallEvent], bool]):
        self.filter, self.want_return, self.emit = flt, want_return, emit
        self.points = {p.address: p for p in points}
        self.pending: Dict[int, events.SyscallEvent] = {}
        self.current_pointers: Dict[int, int] = {}
        self.hits = 0
        self.skipped = 0       # hits the filter turned away
        self.undecodable = 0   # hits that could not be decoded (a note, not an error)

    def prepare(self) -> None:
        """Everything that needs gdb, done while gdb still owns the target:
        each vCPU's per-cpu `current` pointer (&var + __per_cpu_offset[cpu]),
        the syscall tables, the task_struct layout, and the signatures of the
        syscalls asked for by name."""
        for cpu in machine.cpus():
            self.current_pointers[cpu] = tasks.current_pointer(cpu)
        tasks.LIST_READER.layout()
        tasks.pt_regs_address_for_stack(0)
        for abi in self.filter.abis:
            table = syscalls.table(abi)
            syscalls.dispatch(abi)
            for nr in sorted(self.filter.nrs.get(abi) or ()):
                if table.name(nr):
                    syscalls.signature(nr, abi)

    @property
    def addresses(self) -> List[int]:
        return list(self.points)

    def on_hit(self, hit) -> bool:
        self.hits += 1
        point = self.points.get(hit.pc)
        if point is None:
            return True
        if point.kind == "return":
            return self._on_return(hit)
        # Cheapest test first: the number, from pt_regs->orig_ax (%rdi is
        # pt_regs at every C entry point: `do_syscall_64(struct pt_regs *, int)`).
        pt = hit.read(hit.regs["rdi"], PT_REGS_SIZE)
        field = "ax" if point.nr_in_ax else "orig_ax"
        raw = int.from_bytes(pt[PT_REGS_OFFSETS[field]:PT_REGS_OFFSETS[field] + 8], "little")
        nr = events.signed32(raw) if point.abi == "32" else (raw & ~events.X32_SYSCALL_BIT)
        if not self.filter.wants_nr(point.abi, nr):
            self.skipped += 1
            return True
        view = HitView(hit, self.current_pointers)
        try:
            if self.filter.needs_task:
                brief = tasks.LIST_READER.read(view.current_task(), reader=view.read_kernel)
                if not self.filter.wants_task(brief["pid"], brief["tgid"], brief["comm"]):
                    self.skipped += 1
                    return True
            event = events.decode(view)
            event.entry = stub_of_shared_point(hit) if point.shared else point.stub
        except errors.KxError:
            # One unreadable task or pt_regs must not end the trace: counted
            # in the summary ("undecodable").
            self.undecodable += 1
            return True
        if self.want_return:
            if len(self.pending) < _MAX_PENDING:
                self.pending[event.task] = event
            return True
        return self.emit(event)

    def _on_return(self, hit) -> bool:
        if not self.pending:
            return True
        view = HitView(hit, self.current_pointers)
        event = self.pending.pop(view.current_task(), None)
        if event is None:
            return True
        offset = PT_REGS_OFFSETS["ax"]
        ax = int.from_bytes(hit.read(hit.regs["rsp"] + offset, 8), "little")
        event.ret = ax - (1 << 64) if ax >> 63 else ax
        return self.emit(event)
