"""kx tss: the stacks the CPU switches to on entry (RSP0, IST1-7)."""
from gdbext import api
from gdbext.render import Report, Text

from . import X86CpuStateCommand


class KxTss(X86CpuStateCommand):
    """Show one vCPU's 64-bit Task State Segment.
Usage: kx tss [--cpu N] [--json]

Follows TR to its GDT descriptor (checking the busy type) and decodes the
TSS there: RSP0-2, IST1-7 and the I/O map base.  Says where RSP0 points (the
cpu_entry_area entry stack, or the current task's stack top) and which
exception stack each IST slot is (DF, NMI, DB, MCE, VC)."""

    name = "tss"

    def run(self, args):
        data = api.tss(args.cpu).to_dict()
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        if "sp" in d:
            return KxTss.render32(d)
        t = Text().head(f"TSS of CPU {d['cpu']}: TR={d['selector']:#x} base {d['base']:#x} "
                        f"limit {d['limit']:#x} {'busy' if d['busy'] else 'NOT busy'}")
        t.kv("RSP0", f"{d['rsp'][0]:#018x}", note=d["rsp0_is"])
        t.kv("RSP1", f"{d['rsp'][1]:#018x}",
             note="cpu_current_top_of_stack (kept in the TSS before 5.13)"
             if d["rsp"][1] and d["rsp"][1] == d["current_top_of_stack"] else None)
        t.kv("RSP2", f"{d['rsp'][2]:#018x}", note="entry_SYSCALL_64 scratch for the user RSP")
        for s in d["ist_slots"]:
            t.kv(f"IST{s['slot']}", f"{s['address']:#018x}", note=(f"#{s['stack']} stack" if s["stack"] else "unused"))
        t.kv("I/O map base", f"{d['io_bitmap_base']:#x}")
        if d["current_top_of_stack"] is not None:
            t.kv("task stack top", f"{d['current_top_of_stack']:#018x}", note="cpu_current_top_of_stack")
        for w in d["warnings"]:
            t.warn(w)
        return t


    @staticmethod
    def render32(d):
        """An i386 kernel's 32-bit TSS (decoders.tss.Tss32)."""
        t = Text().head(f"TSS of CPU {d['cpu']}: TR={d['selector']:#x} base {d['base']:#x} "
                        f"limit {d['limit']:#x} {'busy' if d['busy'] else 'NOT busy'} (32-bit)")
        for i in range(3):
            note = {0: d["sp0_is"], 1: d["sp1_is"]}.get(i)
            t.kv(f"SS{i}:ESP{i}", f"{d['ss'][i]:#06x}:{d['sp'][i]:#010x}",
                 note=" ".join(x for x in (d["ss_names"][i], note) if x) or None, width=14)
        t.kv("I/O map base", f"{d['io_bitmap_base']:#x}", width=14,
             note="beyond the limit: no I/O bitmap" if d["io_bitmap_base"] > d["limit"] else None)
        for w in d["warnings"]:
            t.warn(w)
        return t


def register():
    KxTss()
