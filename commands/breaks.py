"""kx break: stop on matching system calls, at the entry stub, decoded."""
import gdb

from gdbext import errors, settings
from gdbext.kernel import syscall_filter
from gdbext.kernel.syscall_breakpoints import SyscallBreakpoints
from gdbext.render import Report, Text

from .base import KxCommand, parse_int
from .event import render_event


class KxBreakpoint(SyscallBreakpoints):
    """One `kx break`: a filter and the gdb breakpoints that implement it
    (kernel/syscall_breakpoints.py); a match prints the event and stops."""

    def __init__(self, number, flt, want_return):
        self.number = number
        self.label = f"kx break #{number}"
        super().__init__(flt, want_return)

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
        p.add_argument("--abi", default=None, help="the kernel's own ABI by default (64 on x86-64, 32 on i386), 32 or all")
        p.add_argument("--return", dest="want_return", action="store_true",
                       help="also stop at the syscall's return")

    def completions(self):
        from .syscalls import KxSyscalls
        return ["delete", "all"] + [w for w in KxSyscalls.completions(None) if not w.isdigit()]

    def run(self, args):
        words = args.syscalls
        if words and words[0] == "delete":
            return self._delete(words[1:])
        if not words and args.pid is None and args.comm is None and not args.want_return and args.abi is None:
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
