"""Syscall tracing on kx's own breakpoint loop (machine/rsp_loop.py).

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
from typing import Callable, Dict, List, Optional

from gdbext import arch, errors
from gdbext.arch.base import EntryStub
from gdbext.kernel import (backend, entry, events, page_cache, symbols, syscall_check, syscall_filter, syscall_hits,
                           syscall_hooks, syscalls, tasks)


@dataclass(frozen=True)
class TracePoint:
    address: int
    kind: str       # "entry" or "return"
    abi: str        # "64" or "32"
    stub: str       # the entry stub this point belongs to
    # The pt_regs member with the number on entry (the ABI's, unless the
    # stub's C function stores it itself: EntryStub.c_nr_member).
    nr_member: Optional[str] = None
    # The C function, for an entry point.
    function: Optional[str] = None
    # Shared by two stubs: which one is told by the caller (see stub_of_shared_point).
    shared: bool = False


def _entry_point(abi, stub: EntryStub, taken: Dict[int, TracePoint]) -> TracePoint:
    """The C function `stub` calls with pt_regs (or the one that function
    ends by calling: EntryStub.c_tail, so each call is caught once)."""
    for callee in stub.c_functions:
        address = symbols.lookup(callee)
        if address is None:
            continue
        if stub.c_tail and symbols.lookup(stub.c_tail) is not None:
            callee, address = stub.c_tail, symbols.lookup(stub.c_tail)
        shared = address in taken or any(s.c_tail == callee for s in abi.stubs)
        return TracePoint(address, "entry", abi.name, stub.name, stub.c_nr_member or abi.ptregs_nr,
                          callee, shared)
    raise errors.MissingSymbol(" / ".join(stub.c_functions))


def trace_points(flt: syscall_filter.SyscallFilter, want_return: bool) -> List[TracePoint]:
    """The loop's breakpoints for `flt`: the C entry function of every stub
    this kernel has for the filter's ABIs, and with `want_return` the
    instruction after each stub's call into C."""
    points: Dict[int, TracePoint] = {}
    a = arch.current()
    for abi_name in flt.abis:
        abi = a.abi(abi_name)
        for stub_name, _ in syscall_filter.entry_locations(abi_name):
            stub = entry.syscall_stub(stub_name)
            point = _entry_point(abi, stub, points)
            points[point.address] = point
        if want_return:
            for stub_name, address in syscall_filter.return_locations(abi_name):
                points.setdefault(address, TracePoint(address, "return", abi_name, stub_name))
    return list(points.values())


def stub_of_shared_point(hit, point: TracePoint) -> str:
    """At a C function two stubs reach (do_fast_syscall_32: directly from
    entry_SYSCALL_compat, through do_SYSENTER_32 from entry_SYSENTER_compat):
    the stub, told by the caller."""
    caller = arch.current().return_address_at_c_entry(hit.regs, hit.read)
    found = symbols.table().describe(caller)
    for s in arch.current().abi(point.abi).stubs:
        if found is not None and found[0] in s.c_functions and s.c_tail == point.function:
            return s.name
    stub = entry.entry_of(caller)
    if stub is not None:
        return stub
    return next((s.name for s in arch.current().abi(point.abi).stubs if point.function in s.c_functions),
                point.stub)
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
        return page_cache.with_page_cache(lambda a, n: arch.current().read_user_in_loop(self.hit, a, n),
                                          self.current_task, self.hit.read)(address, size)

    def current_task(self):
        return int.from_bytes(self.hit.read(self._current_pointers[self.cpu], 8), "little")


class LoopTracer(syscall_hits.PipelineCounters):
    """The loop's callback: the syscall-hit pipeline (kernel/syscall_hits.py)
    over the loop's hits; each wanted event goes to the scripts' hooks
    (kernel/syscall_hooks.py: one that asks to stop ends the trace) and to
    `emit(event) -> bool` (False ends the trace)."""

    def __init__(self, flt, want_return: bool, points: List[TracePoint],
                 emit: Callable[[events.SyscallEvent], bool]):
        self.filter, self.want_return, self.emit = flt, want_return, emit
        self.points = {p.address: p for p in points}
        self.pipeline = syscall_hits.SyscallHits(flt, want_return)
        self.current_pointers: Dict[int, int] = {}
        self.hits = 0          # every stop at a trace point

    def prepare(self) -> None:
        """Everything that needs gdb, done while gdb still owns the target:
        each vCPU's `current` pointer, the syscall tables, the task_struct
        layout, and the signatures of the syscalls asked for by name."""
        for cpu in backend.cpus():
            self.current_pointers[cpu] = tasks.current_pointer(cpu)
        tasks.LIST_READER.layout()
        tasks.pt_regs_address_for_stack(0)
        for abi in self.filter.abis:
            table = syscalls.table(abi)
            syscalls.dispatch(abi)
            wanted = self.filter.nrs.get(abi)
            if wanted is None and syscall_check.reference() == "kallsyms":
                # No vmlinux file: signatures come from the ftrace metadata in
                # guest memory, which the loop cannot read through gdb (all of
                # 6.1's 64-bit table: ~1.5 s).
                wanted = range(table.nr_syscalls)
            for nr in sorted(wanted or ()):
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
        a = arch.current()
        pt_regs = a.c_entry_pt_regs(point.function, hit.regs)
        raw = int.from_bytes(hit.read(pt_regs + a.pt_regs_offsets[point.nr_member], a.pointer_size), "little")
        view = HitView(hit, self.current_pointers)
        try:
            if not self.pipeline.wants(point.abi, raw, lambda: syscall_hits.task_identity(view)):
                return True
            event = events.decode(view)
            event.entry = stub_of_shared_point(hit, point) if point.shared else point.stub
        except errors.KxError:
            # One unreadable task or pt_regs must not end the trace: counted
            # in the summary ("undecodable").
            self.pipeline.undecodable += 1
            return True
        self.pipeline.entered(event)
        if syscall_hooks.deliver(event):
            return False    # a script's hook asked to stop here
        return self.emit(event) if self.pipeline.shown_at_entry(event) else True

    def _on_return(self, hit) -> bool:
        if not self.pipeline.pending:
            return True
        view = HitView(hit, self.current_pointers)
        a = arch.current()
        pt_regs = a.pt_regs_after_c_call(hit.regs)
        offset = syscall_hits.return_value_offset(self.points[hit.pc].abi)
        event = self.pipeline.returned(
            view.current_task(), lambda: int.from_bytes(hit.read(pt_regs + offset, a.pointer_size), "little"),
            view.read_user)
        if event is None:
            return True
        return False if syscall_hooks.deliver(event, returned=True) else self.emit(event)
