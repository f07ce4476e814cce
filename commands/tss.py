"""kx tss: the stacks the CPU switches to on entry (RSP0, IST1-7)."""
from gdbext import errors
from gdbext.decoders import descriptors
from gdbext.decoders.tss import decode_tss64, ist_names_for_version
from gdbext.arch.x86_64 import cpu_setup
from gdbext.arch.x86_64 import descriptor_tables as tables
from gdbext.kernel import symbols, version
from gdbext.render import Report, Text
from gdbext import machine

from .base import KxCommand, add_cpu_option


class KxTss(KxCommand):
    """Show one vCPU's 64-bit Task State Segment.
Usage: kx tss [--cpu N] [--json]

Follows TR to its GDT descriptor (checking the busy type) and decodes the
TSS there: RSP0-2, IST1-7 and the I/O map base.  Says where RSP0 points (the
cpu_entry_area entry stack, or the current task's stack top) and which
exception stack each IST slot is (DF, NMI, DB, MCE, VC)."""

    name = "tss"
    needs_kernel_match = False  # CPU state: runs on a mismatch, without symbol names

    def arguments(self, p):
        add_cpu_option(p)

    def run(self, args):
        cpu = machine.check_cpu(args.cpu)
        sysregs, gdt = tables.gdt(cpu)
        selector = sysregs["tr"]["selector"]
        if selector is None:
            raise errors.KxError("TR is not known for this CPU")
        slot = next((e for e in gdt if e.index == selector >> 3), None)
        if slot is None or slot.descriptor is None:
            raise errors.KxError(f"TR {selector:#x} does not index a GDT descriptor")
        desc = slot.descriptor
        base = desc.base
        warnings = []
        if sysregs["tr"]["base"] is not None and sysregs["tr"]["base"] != base:
            warnings.append(f"TR's hidden base {sysregs['tr']['base']:#x} differs from the GDT descriptor's {base:#x}")
        if slot.kind not in ("tss-busy", "tss-avail"):
            warnings.append(f"GDT entry {slot.index} is a {slot.kind}, not a TSS")
        elif slot.kind != "tss-busy":
            warnings.append("the TSS descriptor is not marked busy, yet TR points at it")
        tss = decode_tss64(machine.read_kernel(base, 104, cpu))
        top = cpu_setup.top_of_stack(cpu)
        if cpu_setup.in_cpu_entry_area(tss.rsp[0]):
            rsp0_is = "cpu_entry_area entry stack (entry code switches to the task stack)"
        elif top is not None and tss.rsp[0] == top:
            rsp0_is = "top of the current task's kernel stack"
        else:
            rsp0_is = symbols.format_address(tss.rsp[0]) or "unknown"
        ist_names = ist_names_for_version(*version.version())
        ist = [{"slot": i + 1, "address": a, "stack": ist_names.get(i + 1)} for i, a in enumerate(tss.ist)]
        data = {"cpu": cpu, "selector": selector, "base": base, "busy": slot.kind == "tss-busy",
                "limit": desc.effective_limit, "rsp": list(tss.rsp), "ist": list(tss.ist),
                "io_bitmap_base": tss.io_bitmap_base, "rsp0_is": rsp0_is,
                "current_top_of_stack": top, "ist_slots": ist,
                "selector_name": descriptors.selector_name(selector), "warnings": warnings}
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        t = Text().head(f"TSS of CPU {d['cpu']}: TR={d['selector']:#x} base {d['base']:#x} "
                        f"limit {d['limit']:#x} {'busy' if d['busy'] else 'NOT busy'}")
        t.kv("RSP0", f"{d['rsp'][0]:#018x}", note=d["rsp0_is"])
        t.kv("RSP1", f"{d['rsp'][1]:#018x}")
        t.kv("RSP2", f"{d['rsp'][2]:#018x}", note="entry_SYSCALL_64 scratch for the user RSP")
        for s in d["ist_slots"]:
            t.kv(f"IST{s['slot']}", f"{s['address']:#018x}", note=(f"#{s['stack']} stack" if s["stack"] else "unused"))
        t.kv("I/O map base", f"{d['io_bitmap_base']:#x}")
        if d["current_top_of_stack"] is not None:
            t.kv("task stack top", f"{d['current_top_of_stack']:#018x}", note="cpu_current_top_of_stack")
        for w in d["warnings"]:
            t.warn(w)
        return t


def register():
    KxTss()
