"""kx vectors: the 16 exception vector entries at VBAR_EL1, named."""
from gdbext.arch.arm64 import cpu_reports
from gdbext.render import Report, Text

from . import Arm64CpuStateCommand


class KxVectors(Arm64CpuStateCommand):
    """Show the exception vector table at VBAR_EL1 (the counterpart of kx idt).
Usage: kx vectors [--cpu N] [--json]

The 16 entries (current EL with SP_EL0 / SP_EL1, lower EL AArch64 /
AArch32; each sync, IRQ, FIQ, SError), where each one's code branches and
the handler Linux names for it (el0t_64_sync for `svc #0`, el0t_32_sync
for a compat task's `svc 0`).  Under KPTI, while user code or the
trampoline runs, VBAR_EL1 is the fixmap alias of tramp_vectors (a 2 KiB
slot of it): kx names the slot, shows its run address, and does not
compare the entries, which return into `vectors` instead of branching.
A WARNING when VBAR_EL1 is none of the kernel's tables or an entry of
`vectors` branches elsewhere than its handler."""

    name = "vectors"

    def run(self, args):
        data = cpu_reports.vectors_report(args.cpu)
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        t = Text().head(f"Exception vectors of CPU {d['cpu']}: VBAR_EL1 {d['vbar']:#x} "
                        f"({d['table'] or 'not a kernel vector table'})")
        if d.get("alias_of") is not None:
            t.add(f"  KPTI trampoline: VBAR_EL1 is the fixmap alias of {d['alias_of']:#x} "
                  f"({d['table']}); its entries map the kernel and return into `vectors`\n", "dim")
        for e in d["entries"]:
            t.add(f"  +{e['offset']:#05x} ", "num").add(f"{e['where']:<24} {e['kind']:<5} ")
            t.add(f"{e['handler']:<14}", "sym")
            if e["branches_to"] is not None:
                t.add(f" -> {e['branches_to']:#x} {e['target_symbol'] or '?'}", "dim")
            if e["ok"] is not None:
                t.add("  ok" if e["ok"] else "  DIFFERS", "ok" if e["ok"] else "bad")
            t.add("\n")
        for w in d["warnings"]:
            t.warn(w)
        return t


def register():
    KxVectors()
