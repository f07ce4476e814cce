"""kx gdt: every descriptor of one vCPU's GDT, named after the kernel's layout."""
from gdbext.arch.x86_64 import cpustate
from gdbext.render import Report, Text

from ..base import word_format
from . import X86CpuStateCommand


class KxGdt(X86CpuStateCommand):
    """Show one vCPU's Global Descriptor Table.
Usage: kx gdt [--cpu N] [--json]

Code/data descriptors and the 16-byte long-mode system descriptors (TSS,
LDT) with base, limit, G, type, S, DPL, P, L and D/B, named after the
kernel's layout (KERNEL_CS 0x10 ... USER_CS 0x33, TSS 0x40, CPUNODE 0x7b),
and which of CS/SS/DS/ES/FS/GS/TR hold which selector now."""

    name = "gdt"

    def run(self, args):
        data = cpustate.gdt(args.cpu)
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        t = Text().head(f"GDT of CPU {d['cpu']}: base {d['base']:#x} limit {d['limit']:#x} ({d['source']})")
        if d.get("note"):  # real mode: no table in use
            return t.line(("dim", "  " + d["note"]))
        width = len(f"{0:{word_format()}}")
        t.add(f"  idx sel    kind        {'base':<{width + 1}}limit      DPL P L D/B G  name\n", "dim")
        for r in d["entries"]:
            if r["kind"] == "upper-half":
                t.add(f"  {r['index']:>3} {r['selector']:#06x} (upper half of entry {r['upper_half_of']})\n", "dim")
                continue
            if r["kind"] == "null":
                t.add(f"  {r['index']:>3} {r['selector']:#06x} null\n", "dim")
                continue
            flags = lambda v: "-" if v is None else ("1" if v else "0")  # noqa: E731
            t.add(f"  {r['index']:>3} {r['selector']:#06x} ").add(f"{r['kind']:<11} ", "flag")
            t.add(f"{r['base']:{word_format()}} {r['limit']:#010x} ", "num")
            t.add(f"{r['dpl']:>3} {flags(r['present'])} {flags(r['long'])} {flags(r['db']):>3} "
                  f"{flags(r['granularity'])}  ")
            t.add(r["name"] or "", "sym")
            if r["loaded_in"]:
                t.add("  <- " + " ".join(r["loaded_in"]), "ok")
            t.add("\n")
        sel = ", ".join(f"{r}={v['selector']:#x}" + (f" ({v['name']})" if v["name"] else "")
                        for r, v in d["selectors"].items())
        t.line(("dim", "  loaded: " + sel))
        return t


def register():
    KxGdt()
