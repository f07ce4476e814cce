"""kx break: stop on matching system calls, at the entry stub, decoded."""
import gdb

from gdbext import errors, machine, settings
from gdbext.kernel import events, syscall_filter, syscall_hits, tasks
from gdbext.machine import breakpoints
from gdbext.render import Report, Text

from .base import KxCommand, parse_int
from .event import render_event


class _StubBreakpoint(gdb.Breakpoint):
    """A gdb breakpoint whose stop() asks its KxBreakpoint whether to stop.
    It is an ordinary, visible breakpoint, so gdb's stop line names it and
    `info breakpoints` / `delete` work on it as on any other."""

    def __init__(self, owner, stub, address, kind):
        super().__init__(f"*{address:#x}", type=gdb.BP_BREAKPOINT, internal=False)
        self.owner, self.stub, self.kind = owner, stub, kind
        self.silent = False

    def stop(self):
        try:
            return self.owner.on_hit(self)
        except KeyboardInterrupt:
            return True
        except Exception as exc:  # a decoding problem: stop and say so
            gdb.write(f"kx break #{self.owner.number}: {exc}\n")
            return True


class KxBreakpoint:
    """One `kx break`: a filter, the gdb breakpoints that implement it, and
    the syscall-hit pipeline (kernel/syscall_hits.py) behind them."""

    def __init__(self, number, flt, want_return):
        self.number = number
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
            lambda: _StubBreakpoint(self, stub, address, kind)))

    def alive(self) -> bool:
        return any(b.is_valid() for b in self.gdb_breakpoints)

    def delete(self):
        breakpoints.delete_all(self.gdb_breakpoints)
        self.gdb_breakpoints = []
        self.pipeline.pending.clear()

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
        raw = int(gdb.selected_frame().read_register(arch_nr_register(abi)))

        def identity():
            t = tasks.read_task(tasks.current(cpu), detail=False, cpu=cpu)
            return t.pid, t.tgid, t.comm
        if not self.pipeline.wants(abi, raw, identity):
            return False
        event = self.pipeline.entered(events.decode(events.View(cpu)))
        return self.entered(event)

    def _on_return(self, cpu, abi) -> bool:
        from gdbext import arch
        pt_regs = arch.current().pt_regs_after_c_call(machine.registers(cpu))
        offset = syscall_hits.return_value_offset(abi)
        event = self.pipeline.returned(tasks.current(cpu), lambda: machine.read_u64(pt_regs + offset, cpu))
        if event is None:
            return False
        return self.returned(event, cpu)

    # -- what a match does: `kx break` prints and stops; `kx trace` overrides
    def entered(self, event) -> bool:
        self._print(render_event(event.to_dict(), Text().line(("head", f"kx break #{self.number}:"))))
        return True

    def returned(self, event, cpu) -> bool:
        t = Text().line(("head", f"kx break #{self.number}: return on CPU {cpu}: "),
                        f"{event.pid} {event.comm} ", ("sym", event.strace()))
        self._print(t)
        return True

    @staticmethod
    def _print(text):
        gdb.write(text.render(settings.color_enabled()))


def arch_nr_register(abi: str) -> str:
    """The register that holds the number at the ABI's entry stubs, as the
    machine layer names it (the 64-bit register for eax)."""
    from gdbext import arch
    a = arch.current()
    name = a.abi(abi).nr_reg
    return a.full_register(name)


_breakpoints = {}
_next_number = [1]


def active():
    for n in [n for n, b in _breakpoints.items() if not b.alive()]:
        del _breakpoints[n]  # removed behind our back (`delete` of all breakpoints)
    return _breakpoints


def delete_all():
    for b in list(_breakpoints.values()):
        b.delete()
    _breakpoints.clear()


class KxBreak(KxCommand):
    """Stop on matching system calls and show each one decoded.
Usage: kx break [SYSCALL ...] [--pid N] [--comm NAME] [--abi 64|32|all] [--return]
       kx break                  list kx breakpoints
       kx break delete [ID ...]  delete them (all without IDs)

SYSCALL is a name (openat) or number, for the chosen ABI (default 64; 32 is
int 0x80, sysenter and 32-bit syscall; `all` both).  Breakpoints sit on the
entry stubs (entry_SYSCALL_64, asm_int80_emulation, ...); the filters are
checked inside the breakpoint's stop(), so a syscall that does not match
costs one breakpoint hit and never stops gdb.  --return also stops at the
syscall's exit (just after the stub's call into C) and shows the return
value with its errno name.  Other gdb stops behave as always."""

    name = "break"

    def arguments(self, p):
        p.add_argument("syscalls", nargs="*", metavar="SYSCALL",
                       help="names or numbers; `delete [ID...]` deletes kx breakpoints")
        p.add_argument("--pid", type=parse_int, default=None, help="only this pid or tgid")
        p.add_argument("--comm", default=None, help="only tasks with this comm")
        p.add_argument("--abi", default="64", help="64 (default), 32 or all")
        p.add_argument("--return", dest="want_return", action="store_true",
                       help="also stop at the syscall's return")

    def completions(self):
        from .syscalls import KxSyscalls
        return ["delete", "all"] + [w for w in KxSyscalls.completions(None) if not w.isdigit()]

    def run(self, args):
        words = args.syscalls
        if words and words[0] == "delete":
            return self._delete(words[1:])
        if not words and args.pid is None and args.comm is None and not args.want_return and args.abi == "64":
            return self._list()
        flt = syscall_filter.build(words, args.abi, args.pid, args.comm)
        number = _next_number[0]
        bp = KxBreakpoint(number, flt, args.want_return)
        _next_number[0] += 1
        _breakpoints[number] = bp
        data = {"number": number, "filter": flt.describe(), "return": args.want_return,
                "locations": bp.locations()}
        t = Text().line(("head", f"kx breakpoint #{number}: "), flt.describe(),
                        " (and returns)" if args.want_return else "")
        for loc in data["locations"]:
            t.line(("dim", f"  {loc['kind']:<6} "), ("sym", loc["stub"]), f" {loc['address']:#x}")
        return Report(data, t)

    def _list(self):
        rows = [{"number": n, "filter": b.filter.describe(), "return": b.want_return, "hits": b.hits,
                 "locations": b.locations()} for n, b in sorted(active().items())]
        t = Text()
        if not rows:
            t.line("no kx breakpoints (`kx break openat` sets one)")
        for r in rows:
            t.line(("head", f"#{r['number']}"), f"  {r['filter']}{' + returns' if r['return'] else ''}",
                   ("dim", f"  hits {r['hits']}, {len(r['locations'])} locations"))
        return Report({"breakpoints": rows}, t)

    def _delete(self, ids):
        bps = active()
        if not ids:
            n = len(bps)
            delete_all()
            return Report({"deleted": n}, Text().line(f"deleted {n} kx breakpoint(s)"))
        numbers = []
        for word in ids:
            try:
                numbers.append(int(word.lstrip("#")))
            except ValueError:
                raise errors.BadArgument(f"not a kx breakpoint number: {word!r}") from None
        for n in numbers:
            if n not in bps:
                raise errors.BadArgument(f"no kx breakpoint #{n} (`kx break` lists them)")
        for n in numbers:
            bps.pop(n).delete()
        return Report({"deleted": len(numbers)}, Text().line(f"deleted kx breakpoint(s) {', '.join(map(str, numbers))}"))


def register():
    KxBreak()
