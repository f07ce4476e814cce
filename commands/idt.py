"""kx idt: one vCPU's Interrupt Descriptor Table, with int 0x80 called out."""
from gdbext.arch.x86_64 import descriptor_tables as tables
from gdbext.kernel import symbols
from gdbext.render import Report, Text
from gdbext import machine

from .base import KxCommand, add_cpu_option, parse_int

INT80 = 0x80


class KxIdt(KxCommand):
    """Show one vCPU's Interrupt Descriptor Table.
Usage: kx idt [VECTOR] [--cpu N] [--json]

Each gate: type (interrupt or trap), DPL, IST, selector, handler and its
symbol; vectors 0-31 by exception name.  Vector 0x80 must be a DPL 3 gate to
the kernel's int 0x80 entry (entry_INT80_compat, or asm_int80_emulation on
newer kernels); anything else is a WARNING."""

    name = "idt"
    needs_kernel_match = False  # CPU state: runs on a mismatch, without symbol names

    def arguments(self, p):
        p.add_argument("vector", nargs="?", type=parse_int, help="only this vector (0-255)")
        add_cpu_option(p)

    def run(self, args):
        from gdbext import errors
        if args.vector is not None and not 0 <= args.vector <= 255:
            raise errors.BadArgument(f"vector must be 0-255, got {args.vector}")
        cpu = machine.check_cpu(args.cpu)
        sysregs, entries = tables.idt(cpu)
        warnings = []
        gates = []
        int80_names = tables.int80_entry_names()
        for e in entries:
            g = e.gate
            handler = g.offset if g.present else None
            gate = {"vector": e.vector, "name": e.name, "type": g.kind, "dpl": g.dpl, "ist": g.ist,
                    "selector": g.selector, "present": g.present, "handler": handler,
                    "symbol": symbols.format_address(handler) if handler else None}
            if e.vector == INT80:
                problems = []
                if not g.present:
                    problems.append("not present")
                if g.dpl != 3:
                    problems.append(f"DPL {g.dpl}, not 3 (user space could not use int $0x80)")
                if int80_names and gate["symbol"] not in int80_names:
                    problems.append(f"handler {gate['symbol'] or hex(handler or 0)} is not "
                                    + " or ".join(int80_names))
                gate["ok"] = not problems
                if problems:
                    warnings.append("vector 0x80: " + "; ".join(problems))
            if args.vector is None or args.vector == e.vector:
                gates.append(gate)
        if args.vector is not None and not gates:
            raise errors.BadArgument(f"vector {args.vector:#x} is beyond the IDT limit {sysregs['idt']['limit']:#x}")
        data = {"cpu": cpu, "base": sysregs["idt"]["base"], "limit": sysregs["idt"]["limit"],
                "source": sysregs["source"], "gates": gates, "warnings": warnings}
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        t = Text().head(f"IDT of CPU {d['cpu']}: base {d['base']:#x} limit {d['limit']:#x} ({d['source']})")
        for g in d["gates"]:
            if not g["present"]:
                continue
            t.add(f"  {g['vector']:#04x} ", "num").add(f"{g['type']:<9} DPL{g['dpl']} IST{g['ist']} "
                                                       f"sel={g['selector']:#x} ")
            t.add(f"{g['handler']:#018x} ", "num").add(f"{g['symbol'] or '?':<36}", "sym")
            t.add(f" {g['name']}", "dim")
            if "ok" in g:
                t.add("  ok" if g["ok"] else "  SUSPICIOUS", "ok" if g["ok"] else "bad")
            t.add("\n")
        for w in d["warnings"]:
            t.warn(w)
        return t


def register():
    KxIdt()
