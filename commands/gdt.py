"""kx gdt: every descriptor of one vCPU's GDT, named after the kernel's layout."""
from gdbext.decoders import descriptors
from gdbext.arch.x86_64 import descriptor_tables as tables
from gdbext.render import Report, Text
from gdbext import machine

from .base import KxCommand, add_cpu_option

SEGMENT_REGS = ("cs", "ss", "ds", "es", "fs", "gs")
CR0_PE = 1 << 0  # protected mode


class KxGdt(KxCommand):
    """Show one vCPU's Global Descriptor Table.
Usage: kx gdt [--cpu N] [--json]

Code/data descriptors and the 16-byte long-mode system descriptors (TSS,
LDT) with base, limit, G, type, S, DPL, P, L and D/B, named after the
kernel's layout (KERNEL_CS 0x10 ... USER_CS 0x33, TSS 0x40, CPUNODE 0x7b),
and which of CS/SS/DS/ES/FS/GS/TR hold which selector now."""

    name = "gdt"
    needs_kernel_match = False  # CPU state: runs on a mismatch, without symbol names

    def arguments(self, p):
        add_cpu_option(p)

    def run(self, args):
        cpu = machine.check_cpu(args.cpu)
        regs = machine.registers(cpu)
        if regs.get("cr0") is not None and not regs["cr0"] & CR0_PE:
            # Real mode (reset, the boot sector): segments are base = sel << 4
            # and the GDT is not consulted; GDTR holds its reset value (base
            # 0, limit 0xffff) over the interrupt vector table (SDM Vol.3A 9.1.1).
            sysregs = tables.system_registers(cpu)
            data = {"cpu": cpu, "base": sysregs["gdt"]["base"], "limit": sysregs["gdt"]["limit"],
                    "source": sysregs["source"], "entries": [], "selectors": {},
                    "note": f"CPU {cpu} is in real mode (CR0.PE=0): the GDT is not in use"}
            t = Text().head(f"GDT of CPU {cpu}: base {data['base']:#x} limit {data['limit']:#x} "
                            f"({data['source']})").line(("dim", "  " + data["note"]))
            return Report(data, t)
        sysregs, entries = tables.gdt(cpu)
        loaded = {r.upper(): regs[r] for r in SEGMENT_REGS if regs.get(r) is not None}
        if sysregs["tr"]["selector"] is not None:
            loaded["TR"] = sysregs["tr"]["selector"]
        rows = []
        for e in entries:
            d = e.descriptor
            row = {"index": e.index, "selector": e.selector, "kind": e.kind,
                   "base": getattr(d, "base", None), "limit": getattr(d, "effective_limit", None),
                   "dpl": getattr(d, "dpl", None), "present": getattr(d, "present", None),
                   "long": getattr(d, "long", None), "name": e.name,
                   "raw": e.raw, "type": getattr(d, "type", None), "s": getattr(d, "s", None),
                   "db": getattr(d, "db", None), "granularity": getattr(d, "granularity", None),
                   "loaded_in": [r for r, sel in loaded.items() if sel >> 3 == e.index and not sel & 4
                                 and sel != 0]}
            if e.upper_half_of is not None:
                row["upper_half_of"] = e.upper_half_of
            rows.append(row)
        data = {"cpu": cpu, "base": sysregs["gdt"]["base"], "limit": sysregs["gdt"]["limit"],
                "source": sysregs["source"], "entries": rows,
                "selectors": {r: {"selector": s, "name": descriptors.selector_name(s)} for r, s in loaded.items()}}
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        t = Text().head(f"GDT of CPU {d['cpu']}: base {d['base']:#x} limit {d['limit']:#x} ({d['source']})")
        t.add("  idx sel    kind        base               limit      DPL P L D/B G  name\n", "dim")
        for r in d["entries"]:
            if r["kind"] == "upper-half":
                t.add(f"  {r['index']:>3} {r['selector']:#06x} (upper half of entry {r['upper_half_of']})\n", "dim")
                continue
            if r["kind"] == "null":
                t.add(f"  {r['index']:>3} {r['selector']:#06x} null\n", "dim")
                continue
            flags = lambda v: "-" if v is None else ("1" if v else "0")  # noqa: E731
            t.add(f"  {r['index']:>3} {r['selector']:#06x} ").add(f"{r['kind']:<11} ", "flag")
            t.add(f"{r['base']:#018x} {r['limit']:#010x} ", "num")
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
