"""kx msr: the syscall-path MSRs of one vCPU, decoded, with a verdict."""
from gdbext import api
from gdbext.decoders import msr as msrdec
from gdbext.render import Report, Text

from . import X86CpuStateCommand


class KxMsr(X86CpuStateCommand):
    """Show the syscall-path MSRs of a vCPU, decoded.
Usage: kx msr [NAME|INDEX ...] [--cpu N] [--json]

Covers IA32_EFER, STAR, LSTAR, CSTAR, FMASK (SFMASK), FS_BASE, GS_BASE,
KERNEL_GS_BASE, TSC_AUX and SYSENTER_CS/ESP/EIP, and the FRED MSRs
(FRED_CONFIG, FRED_RSP0, FRED_STKLVLS) when CR4.FRED is on; the first line
says how this CPU enters the kernel (FRED or the IDT and SYSCALL/SYSENTER).
Values come from the gdbstub where it exposes them, else from executing
rdmsr in the guest (TCG, ring 0; code bytes and registers are restored),
else from what the kernel is expected to have programmed (source "expected").  Entry points are
compared with syscall_init(): a mismatch (a hooked entry) is a WARNING."""

    name = "msr"

    def completions(self):
        return [m.name for m in msrdec.ALL_MSRS] + [m.name[5:] for m in msrdec.ALL_MSRS]

    def arguments(self, p):
        p.add_argument("names", nargs="*", metavar="NAME|INDEX")
        super().arguments(p)

    def run(self, args):
        data = api.msrs(args.cpu, args.names or None).to_dict()
        return Report(data, self.render(data))

    @staticmethod
    def render(data):
        t = Text().head(f"MSRs of CPU {data['cpu']}")
        if data.get("entry"):
            t.add(f"  entry: {data['entry']['mechanism']}\n", "dim")
        for row in data["msrs"]:
            value = "unavailable" if row["value"] is None else f"{row['value']:#018x}"
            t.add(f"  {row['name']:<20}", "key").add(f" {value}", "num")
            t.add(f"  {row['source'] or '-':<8}", "dim")
            if row["symbol"]:
                t.add(f"  {row['symbol']}", "sym")
            if "ok" in row:
                t.add("  ok" if row["ok"] else ("  MISMATCH" if row["ok"] is False else "  (not verified)"),
                      "ok" if row["ok"] else ("bad" if row["ok"] is False else "dim"))
            t.add("\n")
            for line in describe_fields(row):
                t.add(f"      {line}\n", "dim")
        for w in data["warnings"]:
            t.warn(w)
        return t


def describe_fields(row):
    f = row["fields"]
    if not f:
        return []
    name = row["name"]
    if name == "IA32_EFER":
        return ["set: " + (" ".join(f["set"]) or "none")]
    if name == "IA32_STAR":
        def s(sel):
            return f"{sel['selector']:#x}" + (f" ({sel['name']})" if sel.get("name") else "")
        return [f"SYSCALL: CS={s(f['syscall_cs'])} SS={s(f['syscall_ss'])}",
                f"SYSRET:  CS32={s(f['sysret_cs32'])} SS={s(f['sysret_ss'])} CS64={s(f['sysret_cs64'])}"]
    if name == "IA32_FMASK":
        return ["SYSCALL clears: " + " ".join(f.get("cleared", []))]
    if "holds" in f:
        return [f"holds the {f['holds']}" + ("; " + f["swapgs"] if name == "IA32_GS_BASE" else "")]
    if "selector" in f:
        sel = f["selector"]
        return [f"selector {sel['selector']:#x}" + (f" ({sel['name']})" if sel.get("name") else "")]
    return [", ".join(f"{k}={v:#x}" if isinstance(v, int) and not isinstance(v, bool) else f"{k}={v}"
                      for k, v in f.items() if not isinstance(v, (dict, list)))]


def register():
    KxMsr()
