"""arm64 CPU state as kx reports it: the system registers of the syscall
path (`kx sysregs`), the exception vector table at VBAR_EL1 (`kx vectors`)
and the KASLR slide VBAR_EL1 gives (`kx kaslr`).

The registers come from QEMU's gdbstub (org.qemu.gdb.arm.sys.regs, read
through gdb per vCPU); the vector layout from the Arm ARM D1.10.2: four
groups of four 128-byte entries (current EL with SP_EL0, current EL with
SP_ELx, lower EL AArch64, lower EL AArch32), each group synchronous, IRQ,
FIQ, SError.  Linux names the handlers el{1t,1h,0t}_{64,32}_{sync,irq,fiq,
error} (arch/arm64/kernel/entry.S, 5.15+).
"""
from typing import Dict, List, Optional

from gdbext import errors, machine
from gdbext.arch.base import SlideReadings
from gdbext.decoders import arm64_insn
from gdbext.decoders import arm64_sysregs as sysregs
from gdbext.decoders.kaslr import signed_delta

VECTOR_ENTRY = 0x80
SLOT = 0x800          # SZ_2K: one table of the Spectre-BHB/KPTI set (asm/vectors.h)
KINDS = ("sync", "irq", "fiq", "error")
GROUPS = (("el1t", "64", "current EL with SP_EL0"), ("el1h", "64", "current EL with SP_EL1"),
          ("el0t", "64", "lower EL, AArch64"), ("el0t", "32", "lower EL, AArch32"))


def vector_handlers() -> List[Dict]:
    """The 16 entries: offset, the architecture's description, and the
    handler Linux names for it."""
    out = []
    for g, (prefix, width, where) in enumerate(GROUPS):
        for k, kind in enumerate(KINDS):
            out.append({"offset": (4 * g + k) * VECTOR_ENTRY, "where": where, "kind": kind,
                        "handler": f"{prefix}_{width}_{kind}"})
    return out


def _regs(cpu: Optional[int]):
    cpu = machine.check_cpu(cpu)
    return cpu, machine.registers(cpu)


def _sysreg(regs, name):
    from gdbext.arch.arm64 import sysreg
    return sysreg(regs, name)


def sysregs_report(cpu: Optional[int]) -> Dict:
    cpu, regs = _regs(cpu)
    value = {name: _sysreg(regs, name) for name in (
        "SCTLR_EL1", "TCR_EL1", "TTBR0_EL1", "TTBR1_EL1", "VBAR_EL1", "MAIR_EL1", "SP_EL0", "TPIDR_EL1",
        "ESR_EL1", "FAR_EL1", "ELR_EL1", "SPSR_EL1")}
    missing = [n for n, v in value.items() if v is None]
    cpsr = regs.get("cpsr")
    out = {"cpu": cpu, "values": value, "missing": missing, "warnings": [],
           "current_el": sysregs.current_el(cpsr) if cpsr is not None else None,
           "pstate": sysregs.decode_pstate(cpsr) if cpsr is not None else None}
    ds = bool((value["TCR_EL1"] or 0) >> sysregs.TCR_DS & 1)

    def ttbr(v):
        return sysregs.decode_ttbr(v, ds=ds)
    decoders = {"SCTLR_EL1": sysregs.decode_sctlr, "TCR_EL1": sysregs.decode_tcr,
                "TTBR0_EL1": ttbr, "TTBR1_EL1": ttbr,
                "MAIR_EL1": sysregs.decode_mair, "ESR_EL1": sysregs.decode_esr, "SPSR_EL1": sysregs.decode_pstate}
    out["decoded"] = {n: f(value[n]) for n, f in decoders.items() if value[n] is not None}
    out["expected"] = _expectations(cpu, value)
    for n in ("SCTLR_EL1", "TCR_EL1"):
        out["warnings"] += out["decoded"].get(n, {}).get("checks", [])
    out["warnings"] += [e["message"] for e in out["expected"] if not e["ok"]]
    return out


def _expectations(cpu: int, value: Dict) -> List[Dict]:
    """What the kernel's own state says these registers must hold: VBAR_EL1
    is `vectors` (or KPTI's trampoline), TPIDR_EL1 is __per_cpu_offset[cpu]
    (arch/arm64/include/asm/percpu.h), SP_EL0 at EL1 is the task in
    __entry_task (entry.S)."""
    from gdbext.kernel import percpu, symbols
    out = []
    if value["VBAR_EL1"] is not None:
        names = vector_tables()
        hit, alias_of = vbar_table(value["VBAR_EL1"], cpu)
        if alias_of is not None:
            hit = f"{hit} (its KPTI fixmap alias)"
        out.append({"register": "VBAR_EL1", "ok": hit is not None, "expected": names, "alias_of": alias_of,
                    "message": hit or f"VBAR_EL1 {value['VBAR_EL1']:#x} is none of the kernel's vector tables "
                                      f"({', '.join(f'{n} {a:#x}' for n, a in names.items())})"})
    if value["TPIDR_EL1"] is not None and symbols.lookup("__per_cpu_offset") is not None:
        want = percpu.offset(cpu)
        out.append({"register": "TPIDR_EL1", "ok": want == value["TPIDR_EL1"], "expected": want,
                    "message": f"TPIDR_EL1 {value['TPIDR_EL1']:#x} is not __per_cpu_offset[{cpu}] {want:#x}"})
    return out


def vector_tables() -> Dict[str, int]:
    """The kernel's vector tables by name, at their run addresses: `vectors`,
    and the KPTI/Spectre-BHB trampolines where the kernel has them."""
    from gdbext.kernel import symbols
    from gdbext.arch.arm64 import VECTOR_TABLES
    out = {}
    for name in VECTOR_TABLES:
        address = symbols.lookup(name)
        if address is not None:
            out[name] = address
    return out


def vectors_report(cpu: Optional[int]) -> Dict:
    """The 16 entries at VBAR_EL1, each with where its first branch leads."""
    from gdbext.kernel import symbols
    cpu, regs = _regs(cpu)
    vbar = _sysreg(regs, "VBAR_EL1")
    if vbar is None:
        raise errors.NotSupported("the gdbstub does not show VBAR_EL1 (QEMU 7.2 calls it VBAR)")
    table_name, alias_of = vbar_table(vbar, cpu)
    code = machine.read_kernel(vbar, 16 * VECTOR_ENTRY, cpu)
    entries = []
    for e in vector_handlers():
        e = dict(e, address=vbar + e["offset"], branches_to=None, target_symbol=None)
        target = _first_branch(code, e["offset"], vbar)
        if target is not None:
            e["branches_to"], e["target_symbol"] = target, symbols.format_address(target)
        expected = symbols.lookup(e["handler"])
        e["expected"] = expected
        e["ok"] = None if expected is None or target is None else target == expected
        entries.append(e)
    warnings = [f"entry {e['offset']:#05x} ({e['handler']}) branches to {e['branches_to']:#x} "
                f"({e['target_symbol'] or 'no symbol'}), not {e['handler']}"
                for e in entries if e["ok"] is False and table_name == "vectors"]
    if table_name is None:
        warnings.insert(0, f"VBAR_EL1 {vbar:#x} is none of the kernel's vector tables")
    return {"cpu": cpu, "vbar": vbar, "table": table_name, "kpti": alias_of is not None, "alias_of": alias_of,
            "entries": entries, "warnings": warnings}


def vbar_table(vbar: int, cpu: int):
    """(the name of the vector table at `vbar` or None, and under KPTI the
    run address in tramp_vectors that `vbar`, its fixmap alias, maps, or
    None).  A Spectre-BHB or trampoline table may be entered at a 2 KiB
    slot past its start (arm64_get_bp_hardening_vector)."""
    from gdbext.arch.arm64 import kpti
    from gdbext.kernel import symbols
    alias_of = kpti.trampoline_alias(vbar, cpu)
    address = vbar if alias_of is None else alias_of
    hit = None
    for name, start in vector_tables().items():
        if start == address:
            hit = name
        elif name != "vectors" and 0 < address - start < 4 * SLOT and (address - start) % SLOT == 0 \
                and (symbols.format_address(address) or "").startswith(name + "+"):
            hit = f"{name}+{address - start:#x}"
    return hit, alias_of


def _first_branch(code: bytes, offset: int, base: int) -> Optional[int]:
    """Where the entry's code branches to (B or BL), within its 32
    instructions; kernel_ventry ends in `b el{..}_{..}` (entry.S)."""
    for off in range(offset, offset + VECTOR_ENTRY, 4):
        hit = arm64_insn.branch_target(arm64_insn.word(code, off), base + off)
        if hit is not None and not (base <= hit[1] < base + len(code)):
            return hit[1]
    return None


def kaslr_readings(table, cpu: int) -> SlideReadings:
    """VBAR_EL1 against the link address of `vectors`, when VBAR_EL1 holds
    `vectors`' code.  Under KPTI, while user code or the trampoline runs,
    VBAR_EL1 is the trampoline's fixmap alias, and with a Spectre-BHB
    mitigation but no KPTI it is __bp_harden_el1_vectors (a 2 KiB slot):
    neither says anything of the slide."""
    notes, sources = {}, {}
    try:
        vbar = _sysreg(machine.registers(cpu), "VBAR_EL1")
    except errors.KxError as exc:
        vbar, notes["vbar"] = None, str(exc)
    link = table.link_address("vectors")
    sources["vbar"] = None
    if vbar is None:
        notes.setdefault("vbar", "the gdbstub shows no VBAR_EL1")
    elif link is None:
        notes["vbar"] = "the vmlinux has no `vectors` symbol"
    elif _holds_vectors(table, link, vbar, cpu) is not False:   # unreadable: take VBAR_EL1 as it is
        sources["vbar"] = signed_delta(vbar, link)
    else:
        through = _trampoline_literal(vbar, cpu)
        if through is not None and _holds_vectors(table, link, through, cpu) is True:
            sources["vbar"] = signed_delta(through, link)
            notes["vbar"] = (f"VBAR_EL1 {vbar:#x} is the KPTI trampoline's alias; its literal pool "
                             f"holds `vectors` {through:#x}")
        else:
            notes["vbar"] = (f"VBAR_EL1 {vbar:#x} does not hold `vectors`' code (the KPTI trampoline's alias "
                             "or a Spectre-BHB table)")
    return SlideReadings(sources=sources, notes=notes, report={"vbar": vbar}, evidence=sources["vbar"] is not None,
                         contradicted_by="VBAR_EL1", placed_by="VBAR_EL1")


def _trampoline_literal(vbar: int, cpu: int) -> Optional[int]:
    """What the first LDR (literal) of VBAR_EL1's lower-EL AArch64 entry
    loads: in a KPTI trampoline entry, tramp_data_read_var's `vectors`
    (tramp_ventry, arch/arm64/kernel/entry.S), or None."""
    entry = vbar + 8 * VECTOR_ENTRY
    try:
        code = machine.read_kernel(entry, VECTOR_ENTRY, cpu)
        for off in range(0, len(code) - 3, 4):
            hit = arm64_insn.ldr_literal(arm64_insn.word(code, off), entry + off)
            if hit is not None:
                return int.from_bytes(machine.read_kernel(hit[1], 8, cpu), "little")
    except errors.KxError:
        pass
    return None


def _holds_vectors(table, link: int, vbar: int, cpu: int) -> Optional[bool]:
    """Whether memory at VBAR_EL1's lower-EL AArch64 entry holds the file's
    `vectors` code there (kernel_ventry's first two instructions: a branch
    over the trampoline cleanup and `mrs x30, tpidrro_el0`, position-
    independent and never patched); None when unreadable."""
    from gdbext.kernel import vmlinux
    lower_el = 8 * VECTOR_ENTRY
    try:
        return machine.read_kernel(vbar + lower_el, 8, cpu) == vmlinux.image(table.path).read(link + lower_el, 8)
    except errors.KxError:
        return None
