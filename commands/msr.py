"""kx msr: the syscall-path MSRs of one vCPU, decoded, with a verdict."""
from gdbext import errors
from gdbext.decoders import msr as msrdec
from gdbext.arch.x86_64 import cpu_setup
from gdbext.kernel import symbols
from gdbext.render import Report, Text
from gdbext import machine
from gdbext.arch.x86_64 import msr_inject

from .base import KxCommand, add_cpu_option

# MSRs whose value the kernel fixes at boot: a mismatch means a hooked entry.
VERIFIED = (msrdec.IA32_LSTAR, msrdec.IA32_STAR, msrdec.IA32_CSTAR, msrdec.IA32_FMASK,
            msrdec.IA32_SYSENTER_CS, msrdec.IA32_SYSENTER_EIP)
SYMBOLIC = (msrdec.IA32_LSTAR, msrdec.IA32_CSTAR, msrdec.IA32_SYSENTER_EIP,
            msrdec.IA32_SYSENTER_ESP)


def _gs_fields(cpu, regs, index):
    kernel_base = cpu_setup.kernel_gs_base(cpu)
    value = regs["gs_base"] if index == msrdec.IA32_GS_BASE else regs["k_gs_base"]
    holds = "kernel per-cpu base" if value == kernel_base else "user value"
    gs_is_kernel = regs["gs_base"] == kernel_base
    return {"holds": holds, "kernel_per_cpu_base": kernel_base,
            "swapgs": "kernel GS active (swapgs has run, or no user GS)" if gs_is_kernel
            else "user GS active (before swapgs, or in user mode)"}


class KxMsr(KxCommand):
    """Show the syscall-path MSRs of a vCPU, decoded.
Usage: kx msr [NAME|INDEX ...] [--cpu N] [--json]

Covers IA32_EFER, STAR, LSTAR, CSTAR, FMASK (SFMASK), FS_BASE, GS_BASE,
KERNEL_GS_BASE, TSC_AUX and SYSENTER_CS/ESP/EIP.  Values come from the
gdbstub where it exposes them, else from executing rdmsr in the guest (TCG,
ring 0; code bytes and registers are restored), else from what the kernel
is expected to have programmed (source "expected").  Entry points are
compared with syscall_init(): a mismatch (a hooked entry) is a WARNING."""

    name = "msr"
    needs_kernel_match = False  # CPU state: runs on a mismatch, without symbol names

    def completions(self):
        return [m.name for m in msrdec.ALL_MSRS] + [m.name[5:] for m in msrdec.ALL_MSRS]

    def arguments(self, p):
        p.add_argument("names", nargs="*", metavar="NAME|INDEX")
        add_cpu_option(p)

    def run(self, args):
        wanted = [msrdec.lookup_msr(n) for n in args.names] or list(msrdec.ALL_MSRS)
        cpu = machine.check_cpu(args.cpu)
        regs = machine.registers(cpu)
        indices = [m.index for m in wanted]
        expected_by_index = {}

        def expected(index):
            if index not in expected_by_index:
                try:
                    expected_by_index[index] = cpu_setup.expected_msr(cpu, index)
                except errors.KernelMismatch:  # wrong vmlinux: no expectations
                    expected_by_index[index] = None
            return expected_by_index[index]

        readings, warnings = msr_inject.read_msrs(cpu, indices, expected)
        rows = []
        for info, r in zip(wanted, readings):
            fields = {}
            if r.value is not None:
                fields = msrdec.decode_msr(info.index, r.value)["fields"]
                if info.index in (msrdec.IA32_GS_BASE, msrdec.IA32_KERNEL_GS_BASE) and r.source == "gdbstub":
                    try:
                        fields = _gs_fields(cpu, regs, info.index)
                    except errors.KernelMismatch:  # wrong vmlinux: per-cpu base unknown
                        pass
            symbol = symbols.format_address(r.value) if info.index in SYMBOLIC and r.value else None
            row = {"name": info.name, "index": info.index, "value": r.value, "source": r.source,
                   "symbol": symbol, "fields": fields}
            if info.index in VERIFIED:
                want = expected(info.index)
                row["expected"] = want
                measured = r.source in ("gdbstub", "rdmsr")
                row["ok"] = r.value == want if measured and want is not None else None
                if row["ok"] is False:
                    exp_sym = symbols.format_address(want) if info.index in SYMBOLIC else None
                    warnings.append(
                        f"{info.name} is {r.value:#x}"
                        + (f" ({symbol})" if symbol else "")
                        + f" but the kernel programs {want:#x}"
                        + (f" ({exp_sym})" if exp_sym else "")
                        + ": the entry point is hooked or the MSR was rewritten")
            if r.note:
                warnings.append(f"{info.name}: {r.note}")
            rows.append(row)
        data = {"cpu": cpu, "msrs": rows, "warnings": warnings}
        return Report(data, self.render(data))

    @staticmethod
    def render(data):
        t = Text().head(f"MSRs of CPU {data['cpu']}")
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
