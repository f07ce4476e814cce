"""kx idt: one vCPU's Interrupt Descriptor Table, with int 0x80 called out."""
from gdbext import errors
from gdbext.arch.x86_64 import cpustate
from gdbext.render import Report, Text

from ..base import parse_int, word_format
from . import X86CpuStateCommand


class KxIdt(X86CpuStateCommand):
    """Show one vCPU's Interrupt Descriptor Table.
Usage: kx idt [VECTOR] [--cpu N] [--json]

Each gate: type (interrupt or trap), DPL, IST, selector, handler and its
symbol; vectors 0-31 by exception name.  Vector 0x80 must be a DPL 3 gate to
the kernel's int 0x80 entry (entry_INT80_compat, or asm_int80_emulation on
newer kernels); anything else is a WARNING."""

    name = "idt"

    def arguments(self, p):
        p.add_argument("vector", nargs="?", type=parse_int, help="only this vector (0-255)")
        super().arguments(p)

    def run(self, args):
        if args.vector is not None and not 0 <= args.vector <= 255:
            raise errors.BadArgument(f"vector must be 0-255, got {args.vector}")
        data = cpustate.idt(args.cpu, args.vector)
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        t = Text().head(f"IDT of CPU {d['cpu']}: base {d['base']:#x} limit {d['limit']:#x} ({d['source']})")
        for g in d["gates"]:
            if not g["present"]:
                continue
            t.add(f"  {g['vector']:#04x} ", "num").add(f"{g['type']:<9} DPL{g['dpl']} IST{g['ist']} "
                                                       f"sel={g['selector']:#x} ")
            t.add(f"{g['handler']:{word_format()}} ", "num").add(f"{g['symbol'] or '?':<36}", "sym")
            t.add(f" {g['name']}", "dim")
            if "ok" in g:
                t.add("  ok" if g["ok"] else "  SUSPICIOUS", "ok" if g["ok"] else "bad")
            t.add("\n")
        for w in d["warnings"]:
            t.warn(w)
        return t


def register():
    KxIdt()
