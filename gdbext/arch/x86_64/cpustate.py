"""One x86-64 vCPU's state with kx's verdicts: the syscall-path MSRs against
what syscall_init() programs (a hooked entry point), which GS base is the
kernel's, the GDT as the kernel lays it out, the int 0x80 gate, and the TSS
that TR selects.

Each function returns the report that `kx msr`, `kx gdt`, `kx idt` and
`kx tss` print (its JSON is docs/interface.md); the commands only parse and
render.  msrs() and tss() return the typed records of cpu_reports.py
(gdbext.api.msrs / tss); gdt() and idt() return dicts.
"""
from typing import Callable, Dict, List, Optional

from gdbext import arch, errors
from gdbext.arch.x86_64 import cpu_setup, descriptor_tables, msr_inject
from gdbext.arch.x86_64.cpu_reports import IstSlot, Msr, MsrReport, TssReport
from gdbext.decoders import descriptors
from gdbext.decoders import msr as msrdec
from gdbext.decoders.tss import TSS64_SIZE, decode_tss64, ist_names_for_version
from gdbext.kernel import symbols, version
from gdbext import machine

# MSRs whose value the kernel fixes at boot: a mismatch means a hooked entry.
VERIFIED = (msrdec.IA32_LSTAR, msrdec.IA32_STAR, msrdec.IA32_CSTAR, msrdec.IA32_FMASK,
            msrdec.IA32_SYSENTER_CS, msrdec.IA32_SYSENTER_EIP, msrdec.IA32_FRED_CONFIG)
SYMBOLIC = (msrdec.IA32_LSTAR, msrdec.IA32_CSTAR, msrdec.IA32_SYSENTER_EIP,
            msrdec.IA32_SYSENTER_ESP)
MEASURED = ("gdbstub", "rdmsr")   # sources that read the CPU, not the kernel's intent

SEGMENT_REGS = ("cs", "ss", "ds", "es", "fs", "gs")
CR0_PE = 1 << 0  # protected mode (SDM Vol.3A 2.5)
INT80 = 0x80


# ---------------------------------------------------------------------------
# MSRs

def _expectations(cpu: int) -> Callable[[int], Optional[int]]:
    """expected(index): what the kernel programs into the MSR, once per
    index; None with the wrong vmlinux (no expectations then)."""
    known: Dict[int, Optional[int]] = {}

    def expected(index: int) -> Optional[int]:
        if index not in known:
            try:
                known[index] = cpu_setup.expected_msr(cpu, index)
            except errors.KernelMismatch:
                known[index] = None
        return known[index]
    return expected


def gs_base_holds(cpu: int, regs: Dict[str, int], index: int) -> Dict:
    """Whether GS_BASE / KERNEL_GS_BASE holds the kernel's per-cpu base, and
    so which side of swapgs the CPU is on (SDM Vol.2B, SWAPGS)."""
    kernel_base = cpu_setup.kernel_gs_base(cpu)
    value = regs["gs_base"] if index == msrdec.IA32_GS_BASE else regs["k_gs_base"]
    holds = "kernel per-cpu base" if value == kernel_base else "user value"
    gs_is_kernel = regs["gs_base"] == kernel_base
    return {"holds": holds, "kernel_per_cpu_base": kernel_base,
            "swapgs": "kernel GS active (swapgs has run, or no user GS)" if gs_is_kernel
            else "user GS active (before swapgs, or in user mode)"}


def _msr_fields(cpu, regs, index, reading) -> Dict:
    if reading.value is None:
        return {}
    if index in (msrdec.IA32_GS_BASE, msrdec.IA32_KERNEL_GS_BASE) and reading.source == "gdbstub":
        try:
            return gs_base_holds(cpu, regs, index)
        except errors.KernelMismatch:  # wrong vmlinux: per-cpu base unknown
            pass
    return msrdec.decode_msr(index, reading.value)["fields"]


def hooked_entry_warning(info, value: int, symbol: Optional[str], want: int) -> str:
    want_symbol = symbols.format_address(want) if info.index in SYMBOLIC else None
    return (f"{info.name} is {value:#x}" + (f" ({symbol})" if symbol else "")
            + f" but the kernel programs {want:#x}" + (f" ({want_symbol})" if want_symbol else "")
            + ": the entry point is hooked or the MSR was rewritten")


def _msr_row(cpu, regs, info, reading, expected, warnings: List[str]) -> Msr:
    value = reading.value
    symbol = symbols.format_address(value) if info.index in SYMBOLIC and value else None
    row = Msr(info.name, info.index, value, reading.source, symbol, _msr_fields(cpu, regs, info.index, reading))
    if info.index in VERIFIED:
        row.verified = True
        want = row.expected = expected(info.index)
        row.ok = value == want if reading.source in MEASURED and want is not None else None
        if row.ok is False:
            warnings.append(hooked_entry_warning(info, value, symbol, want))
    if reading.note:
        warnings.append(f"{info.name}: {reading.note}")
    return row


def msrs(cpu: Optional[int], wanted: Optional[List] = None) -> MsrReport:
    """The MSRs `wanted` (decoders.msr.MsrInfo; None: the syscall path's,
    and FRED's when it is on) of `cpu`, each read from the best source and,
    where the kernel fixes it, checked against syscall_init()."""
    cpu = machine.check_cpu(cpu)
    regs = machine.registers(cpu)
    entry = cpu_setup.fred_state(cpu)
    if wanted is None:
        # The FRED MSRs raise #GP without FRED: listed only when it is on.
        wanted = list(msrdec.ALL_MSRS) + (list(msrdec.FRED_MSRS) if entry["fred_enabled"] else [])
    expected = _expectations(cpu)
    readings, warnings = msr_inject.read_msrs(cpu, [m.index for m in wanted], expected)
    rows = [_msr_row(cpu, regs, info, r, expected, warnings) for info, r in zip(wanted, readings)]
    if not entry["fred_enabled"] and any(m in msrdec.FRED_MSRS for m in wanted):
        warnings.append("FRED is off on this CPU (CR4.FRED=0): its MSRs are not in use"
                        " (a real CPU without FRED raises #GP; QEMU's TCG reads them as 0)")
    return MsrReport(cpu, rows, warnings, entry)


# ---------------------------------------------------------------------------
# GDT

def _real_mode_gdt(cpu: int) -> Dict:
    # Real mode (reset, the boot sector): segments are base = sel << 4 and
    # the GDT is not consulted; GDTR holds its reset value (base 0, limit
    # 0xffff) over the interrupt vector table (SDM Vol.3A 9.1.1).
    sysregs = descriptor_tables.system_registers(cpu)
    return {"cpu": cpu, "base": sysregs["gdt"]["base"], "limit": sysregs["gdt"]["limit"],
            "source": sysregs["source"], "entries": [], "selectors": {},
            "note": f"CPU {cpu} is in real mode (CR0.PE=0): the GDT is not in use"}


def _gdt_row(entry, loaded: Dict[str, int]) -> Dict:
    d = entry.descriptor
    row = {"index": entry.index, "selector": entry.selector, "kind": entry.kind,
           "base": getattr(d, "base", None), "limit": getattr(d, "effective_limit", None),
           "dpl": getattr(d, "dpl", None), "present": getattr(d, "present", None),
           "long": getattr(d, "long", None), "name": entry.name,
           "raw": entry.raw, "type": getattr(d, "type", None), "s": getattr(d, "s", None),
           "db": getattr(d, "db", None), "granularity": getattr(d, "granularity", None),
           # A selector names a GDT slot unless its TI bit (4) picks the LDT.
           "loaded_in": [r for r, sel in loaded.items() if sel >> 3 == entry.index and not sel & 4
                         and sel != 0]}
    if entry.upper_half_of is not None:
        row["upper_half_of"] = entry.upper_half_of
    return row


def gdt(cpu: Optional[int]) -> Dict:
    """Every GDT descriptor of `cpu`, named after the kernel's layout, and
    which segment registers (and TR) hold which selector."""
    cpu = machine.check_cpu(cpu)
    regs = machine.registers(cpu)
    if regs.get("cr0") is not None and not regs["cr0"] & CR0_PE:
        return _real_mode_gdt(cpu)
    sysregs, entries = descriptor_tables.gdt(cpu)
    loaded = {r.upper(): regs[r] for r in SEGMENT_REGS if regs.get(r) is not None}
    if sysregs["tr"]["selector"] is not None:
        loaded["TR"] = sysregs["tr"]["selector"]
    return {"cpu": cpu, "base": sysregs["gdt"]["base"], "limit": sysregs["gdt"]["limit"],
            "source": sysregs["source"], "entries": [_gdt_row(e, loaded) for e in entries],
            "selectors": {r: {"selector": s, "name": arch.current().selector_name(s)} for r, s in loaded.items()}}


# ---------------------------------------------------------------------------
# IDT

def int80_gate_problems(gate, symbol: Optional[str], entry_names: List[str]) -> List[str]:
    """What is wrong with the int 0x80 gate: it must be present, DPL 3 (or
    user space's int $0x80 raises #GP: SDM Vol.2A, INT n) and lead to the
    kernel's int 0x80 entry."""
    problems = []
    if not gate.present:
        problems.append("not present")
    if gate.dpl != 3:
        problems.append(f"DPL {gate.dpl}, not 3 (user space could not use int $0x80)")
    if entry_names and symbol not in entry_names:
        problems.append(f"handler {symbol or hex(gate.offset if gate.present else 0)} is not "
                        + " or ".join(entry_names))
    return problems


def _gate_row(entry) -> Dict:
    g = entry.gate
    handler = g.offset if g.present else None
    return {"vector": entry.vector, "name": entry.name, "type": g.kind, "dpl": g.dpl, "ist": g.ist,
            "selector": g.selector, "present": g.present, "handler": handler,
            "symbol": symbols.format_address(handler) if handler else None}


def idt(cpu: Optional[int], vector: Optional[int] = None) -> Dict:
    """The IDT gates of `cpu` (only `vector`'s if given), with the int 0x80
    gate checked whichever are shown."""
    cpu = machine.check_cpu(cpu)
    sysregs, entries = descriptor_tables.idt(cpu)
    entry_names = descriptor_tables.int80_entry_names()
    gates, warnings = [], []
    for e in entries:
        gate = _gate_row(e)
        if e.vector == INT80:
            problems = int80_gate_problems(e.gate, gate["symbol"], entry_names)
            gate["ok"] = not problems
            if problems:
                warnings.append("vector 0x80: " + "; ".join(problems))
        if vector is None or vector == e.vector:
            gates.append(gate)
    if vector is not None and not gates:
        raise errors.BadArgument(f"vector {vector:#x} is beyond the IDT limit {sysregs['idt']['limit']:#x}")
    if cpu_setup.fred_state(cpu)["fred_enabled"]:
        warnings.append("FRED is on (CR4.FRED=1): the CPU delivers events through IA32_FRED_CONFIG"
                        " and does not consult this IDT (see kx msr)")
    return {"cpu": cpu, "base": sysregs["idt"]["base"], "limit": sysregs["idt"]["limit"],
            "source": sysregs["source"], "gates": gates, "warnings": warnings}


# ---------------------------------------------------------------------------
# TSS

def tss_descriptor(sysregs: Dict, entries, warnings: List[str]):
    """TR -> its GDT slot: (selector, slot), with what is odd about the slot
    appended to `warnings` (ltr marks the descriptor busy: SDM Vol.2A, LTR)."""
    selector = sysregs["tr"]["selector"]
    if selector is None:
        raise errors.KxError("TR is not known for this CPU")
    slot = next((e for e in entries if e.index == selector >> 3), None)
    if slot is None or slot.descriptor is None:
        raise errors.KxError(f"TR {selector:#x} does not index a GDT descriptor")
    base = slot.descriptor.base
    if sysregs["tr"]["base"] is not None and sysregs["tr"]["base"] != base:
        warnings.append(f"TR's hidden base {sysregs['tr']['base']:#x} differs from the GDT descriptor's {base:#x}")
    if slot.kind not in ("tss-busy", "tss-avail"):
        warnings.append(f"GDT entry {slot.index} is a {slot.kind}, not a TSS")
    elif slot.kind != "tss-busy":
        warnings.append("the TSS descriptor is not marked busy, yet TR points at it")
    return selector, slot


def rsp0_points_at(rsp0: int, top: Optional[int]) -> str:
    if cpu_setup.in_cpu_entry_area(rsp0):
        return "cpu_entry_area entry stack (entry code switches to the task stack)"
    if top is not None and rsp0 == top:
        return "top of the current task's kernel stack"
    return symbols.format_address(rsp0) or "unknown"


def tss(cpu: Optional[int]) -> TssReport:
    """The 64-bit TSS that `cpu`'s TR selects: RSP0-2, IST1-7, the I/O map
    base, and where RSP0 and each IST slot point."""
    cpu = machine.check_cpu(cpu)
    sysregs, entries = descriptor_tables.gdt(cpu)
    warnings: List[str] = []
    selector, slot = tss_descriptor(sysregs, entries, warnings)
    base = slot.descriptor.base
    state = decode_tss64(machine.read_kernel(base, TSS64_SIZE, cpu))
    top = cpu_setup.top_of_stack(cpu)
    ist_names = ist_names_for_version(*version.version())
    ist = [IstSlot(i + 1, a, ist_names.get(i + 1)) for i, a in enumerate(state.ist)]
    return TssReport(cpu=cpu, selector=selector, base=base, busy=slot.kind == "tss-busy",
                     limit=slot.descriptor.effective_limit, rsp=list(state.rsp), ist=list(state.ist),
                     io_bitmap_base=state.io_bitmap_base, rsp0_is=rsp0_points_at(state.rsp[0], top),
                     current_top_of_stack=top, ist_slots=ist,
                     selector_name=descriptors.selector_name(selector), warnings=warnings)
