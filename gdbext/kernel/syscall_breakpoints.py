"""The gdb-breakpoint engine of the syscall-hit pipeline: gdb breakpoints at
the entry stubs (and, for returns, just after each stub's call into C)
whose stop() runs kernel/syscall_hits.py and asks its owner whether to stop.

`kx break` and `kx trace --engine gdb` (commands/breaks.py, trace.py) and
the scripts' hooks (kernel/syscall_hooks.py) subclass SyscallBreakpoints and
say what a match does: print and stop, write a trace line, or call a
script's callback.
"""
import gdb

from gdbext import arch, machine
from gdbext.kernel import events, syscall_filter, syscall_hits, tasks
from gdbext.machine import breakpoints


class StubBreakpoint(gdb.Breakpoint):
    """A gdb breakpoint whose stop() asks its owner whether to stop.  It is
    an ordinary, visible breakpoint, so gdb's stop line names it and `info
    breakpoints` / `delete` work on it as on any other."""

    def __init__(self, owner, stub, address, kind):
        super().__init__(f"*{address:#x}", type=gdb.BP_BREAKPOINT, internal=False)
        self.owner, self.stub, self.kind = owner, stub, kind
        self.silent = False

    def stop(self):
        try:
            return self.owner.on_hit(self)
        except KeyboardInterrupt:
            return True
        except Exception as exc:  # a decoding problem: the owner says what to do
            return self.owner.on_error(exc)


def nr_register(abi: str) -> str:
    """The register that holds the number at the ABI's entry stubs, as the
    machine layer names it (the 64-bit register for eax)."""
    a = arch.current()
    return a.full_register(a.abi(abi).nr_reg)


class SyscallBreakpoints:
    """One filter's gdb breakpoints and the syscall-hit pipeline behind
    them.  Subclasses override entered() / returned() (True stops gdb) and
    on_error()."""

    label = "kx"    # how one-line messages name the owner

    def __init__(self, flt, want_return: bool):
        self.filter = flt
        self.want_return = want_return
        self.pipeline = syscall_hits.SyscallHits(flt, want_return)
        self.gdb_breakpoints = []
        try:
            for abi in flt.abis:
                for stub, address in syscall_filter.entry_locations(abi):
                    self._add(stub, address, ("entry", abi))
                if want_return:
                    for stub, address in syscall_filter.return_locations(abi):
                        self._add(stub, address, ("return", abi))
        except BaseException:
            self.delete()
            raise

    @property
    def hits(self) -> int:
        return self.pipeline.hits

    def _add(self, stub, address, kind):
        self.gdb_breakpoints.append(breakpoints.create_quietly(
            lambda: StubBreakpoint(self, stub, address, kind)))

    def alive(self) -> bool:
        return any(b.is_valid() for b in self.gdb_breakpoints)

    def delete(self):
        breakpoints.delete_all(self.gdb_breakpoints)
        self.gdb_breakpoints = []
        self.pipeline.forget()

    def locations(self):
        return [{"stub": b.stub, "address": breakpoints.address_of(b), "kind": b.kind[0]}
                for b in self.gdb_breakpoints if b.is_valid()]

    # -- the hot path: every syscall on every vCPU comes through here --------
    def on_hit(self, bp) -> bool:
        machine.assume_stopped()  # a new stop, even if gdb raised no stop event
        kind, abi = bp.kind
        cpu = machine.selected_cpu()
        if kind == "return":
            return self._on_return(cpu, abi)
        # At the entry stub the CPU may still be on the user page table, so
        # every kernel read is a page walk: the number comes first, from its
        # register, so a call nobody asked for pays for none.
        raw = int(gdb.selected_frame().read_register(nr_register(abi)))

        def identity():
            t = tasks.read_task(tasks.current(cpu), detail=False, cpu=cpu)
            return t.pid, t.tgid, t.comm
        if not self.pipeline.wants(abi, raw, identity):
            return False
        state = None
        if self.want_return:
            state = (cpu, tuple(machine.registers(cpu).items()))
            if self.pipeline.repeats_parked_entry(tasks.current(cpu), state):
                return False    # the same entry again: gdb steps over it once more
        event = self.pipeline.entered(events.decode(events.View(cpu)), state)
        return self.entered(event)

    def _on_return(self, cpu, abi) -> bool:
        pt_regs = arch.current().pt_regs_after_c_call(machine.registers(cpu))
        offset = syscall_hits.return_value_offset(abi)
        event = self.pipeline.returned(tasks.current(cpu), lambda: machine.read_u64(pt_regs + offset, cpu),
                                       events.View(cpu).read_user)
        if event is None:
            return False
        return self.returned(event, cpu)

    # -- what a match does -----------------------------------------------------
    def entered(self, event) -> bool:
        return True

    def returned(self, event, cpu) -> bool:
        return True

    def on_error(self, exc: Exception) -> bool:
        """A hit that could not be handled: say so in one line and stop."""
        gdb.write(f"{self.label}: {exc}\n")
        return True
