"""kx sysregs: one vCPU's arm64 system registers of the syscall path, bit by bit."""
from gdbext.arch.arm64 import cpu_reports
from gdbext.render import Report, Text

from . import Arm64CpuStateCommand


class KxSysregs(Arm64CpuStateCommand):
    """Show one vCPU's arm64 system registers, decoded (the counterpart of kx msr).
Usage: kx sysregs [--cpu N] [--json]

SCTLR_EL1 (MMU, caches, alignment checks), TCR_EL1 (VA sizes, granules,
ASID size), TTBR0/1_EL1 (table address and ASID), VBAR_EL1 (which vector
table), MAIR_EL1 (the memory types), SP_EL0 (current at EL1), TPIDR_EL1 (the
per-cpu offset), ESR_EL1 (the last exception's class: SVC64, SVC32, data
abort...), FAR_EL1, ELR_EL1, SPSR_EL1 and CurrentEL.  WARNING lines where a
register is not what the kernel programs (VBAR_EL1 not one of its vector
tables, TPIDR_EL1 not __per_cpu_offset[cpu], SCTLR bits)."""

    name = "sysregs"

    def run(self, args):
        data = cpu_reports.sysregs_report(args.cpu)
        return Report(data, self.render(data))

    @staticmethod
    def render(d):
        t = Text().head(f"System registers of CPU {d['cpu']}  (CurrentEL = EL{d['current_el']})")
        values, dec = d["values"], d["decoded"]
        notes = {
            "SCTLR_EL1": lambda x: " ".join(x["set"]),
            "TCR_EL1": lambda x: (f"T0SZ={x['t0sz']} ({x['va_bits_user']}-bit user) T1SZ={x['t1sz']} "
                                  f"({x['va_bits_kernel']}-bit kernel) TG0={x['tg0']} TG1={x['tg1']} "
                                  f"IPS={x['ips_bits']}-bit AS={'16' if x['as16'] else '8'}-bit ASID"
                                  + (" DS(LPA2: 52-bit descriptors)" if x["ds"] else "")
                                  + (f" walk {x['levels_kernel'][0]}..L3" if x.get("levels_kernel") else "")),
            "TTBR0_EL1": lambda x: f"ASID {x['asid']:#x} table {x['baddr']:#x}",
            "TTBR1_EL1": lambda x: f"ASID {x['asid']:#x} table {x['baddr']:#x}",
            "MAIR_EL1": lambda x: ", ".join(f"{a['index']}:{a['meaning']}" for a in x if a["attr"] or a["index"] < 5),
            "ESR_EL1": lambda x: f"EC={x['ec']:#x} {x['ec_name']} IL={x['il']} ISS={x['iss']:#x}",
            "SPSR_EL1": lambda x: f"{x['mode']} {' '.join(x['set'])}",
        }
        expected = {e["register"]: e for e in d["expected"]}
        for name, value in values.items():
            if value is None:
                t.line(("key", f"  {name:<10}"), ("dim", " not shown by this gdbstub"))
                continue
            note = notes[name](dec[name]) if name in dec else ""
            if name in expected and expected[name]["ok"]:
                hit = expected[name]
                note = hit["message"] if name == "VBAR_EL1" else f"= __per_cpu_offset[{d['cpu']}]"
            t.line(("key", f"  {name:<10}"), ("num", f" {value:#018x}"), ("dim", f"  {note}"))
        if d["pstate"]:
            p = d["pstate"]
            t.line(("key", "  PSTATE    "), ("num", f" {p['value']:#018x}"), ("dim", f"  {p['mode']} {' '.join(p['set'])}"))
        for w in d["warnings"]:
            t.warn(w)
        return t


def register():
    KxSysregs()
