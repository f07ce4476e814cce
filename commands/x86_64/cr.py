"""kx cr: one vCPU's control registers, decoded bit by bit."""
from gdbext.arch.x86_64 import control
from gdbext.render import Report, Text

from . import X86CpuStateCommand

# Where each register is defined (Intel SDM).
SDM = {"CR0": "SDM Vol.3A 2.5", "CR2": "SDM Vol.3A 2.5", "CR3": "SDM Vol.3A 2.5, 4.5",
       "CR4": "SDM Vol.3A 2.5", "CR8": "SDM Vol.3A 2.5, 10.8.6", "EFER": "SDM Vol.3A 2.2.1",
       "XCR0": "SDM Vol.1 13.3"}


class KxCr(X86CpuStateCommand):
    """Show a vCPU's control registers: CR0, CR2, CR3, CR4, CR8, EFER, XCR0.
Usage: kx cr [--cpu N] [--json]

Every architectural bit by name with what it means (SDM Vol.3A 2.5; EFER:
Vol.3A 2.2.1; XCR0: Vol.1 13.3).  CR3: the page-table root, the PCID (with
CR4.PCIDE), and under KPTI whether this is the user or the kernel PGD of
the pair (bit 12, PTI_USER_PGTABLE_BIT) and where the other one is.
CR0-CR4, CR8 and EFER come from QEMU's gdbstub; neither the gdbstub nor the
monitor exposes XCR0, so kx shows the value the kernel wrote with xsetbv
(fpu_user_cfg.max_features), marked source "kernel"."""

    name = "cr"

    def run(self, args):
        data = control.control_registers(args.cpu)
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        t = Text().head(f"Control registers of CPU {d['cpu']}")
        for row in d["registers"]:
            value = "unavailable" if row["value"] is None else f"{row['value']:#018x}"
            t.add(f"  {row['name']:<6}", "key").add(f" {value}", "num")
            t.add(f"  {row['source'] or '-':<8}", "dim").add(f"  {SDM[row['name']]}\n", "dim")
            if row["name"] == "CR3" and d["cr3"]:
                _cr3_lines(t, d["cr3"])
            for b in row["bits"]:
                if b["set"]:
                    t.add(f"      {b['name']:<11}", "flag").add(f"bit {b['bit']:<2}  {b['meaning']}\n", "dim")
            if row["clear"]:
                t.add(f"      clear: {' '.join(row['clear'])}\n", "dim")
            if row["unknown"]:
                t.add(f"      other bits set: {' '.join(str(b) for b in row['unknown'])}\n", "warn")
            extra = [s for s in row["set"] if s.startswith("TPL")]
            if extra:
                t.add(f"      {' '.join(extra)}\n", "flag")
            if row["note"]:
                t.add(f"      {row['note']}\n", "dim")
        for w in d["warnings"]:
            t.warn(w)
        return t


def _cr3_lines(t: Text, c) -> None:
    pcid = f"PCID {c['pcid']:#x}" if c["pcide"] else "no PCID (CR4.PCIDE clear)"
    root = c.get("root_name", "PGD")
    t.add(f"      page-table root ({root}) {c['pgd']:#x}  {pcid}\n", "dim")
    if c["view"] in ("user", "kernel"):
        other = "kernel" if c["view"] == "user" else "user"
        t.add(f"      KPTI: the {c['view']} {root} (bit 12 {'set' if c['view'] == 'user' else 'clear'}); ", "flag")
        t.add(f"the {other} {root} is at {c[other + '_pgd']:#x} (CR3 {c[other + '_cr3']:#x})\n", "dim")
    elif c["view"] == "only":
        t.add(f"      KPTI is off: one {root} for kernel and user\n", "dim")
    else:
        t.add("      KPTI unknown (boot_cpu_data not readable)\n", "dim")


def register():
    KxCr()
