"""What the kernel sets up in each x86 CPU: the values syscall_init() writes
(arch/x86/kernel/cpu/common.c; idt_syscall_init() in 6.12), the per-cpu
TSS, the stack top, the CPU features, and which GS base is the kernel's.
These are the `expected` MSR source and the reference for cpustate.py's
verdicts.

syscall_init()'s writes are read from its own code in the vmlinux, along
the path this CPU takes (decoders/x86_msr_writes.py): which MSRs it writes
and with what differs between kernels (CSTAR on Intel, SYSCALL_MASK), and
backports make the version a poor guide.  The version facts below are only
the fallback for code the walk does not understand."""
from typing import Dict, Optional

from gdbext import arch, errors
from gdbext.decoders import msr as msrdec
from gdbext.decoders import x86_msr_writes
from gdbext.decoders.kaslr import relocatable
from gdbext.decoders.tss import decode_tss64
from gdbext.kernel import percpu, symbols, types, version
from gdbext import machine

X86_VENDOR_INTEL = 0  # arch/x86/include/asm/processor.h


def vendor_is_intel():
    """boot_cpu_data.x86_vendor == X86_VENDOR_INTEL, or None if unknown."""
    try:
        addr = symbols.address("boot_cpu_data") + types.offsetof("struct cpuinfo_x86", "x86_vendor")
        return machine.read_kernel(addr, 1)[0] == X86_VENDOR_INTEL
    except errors.KxError:
        return None


def boot_cpu_capabilities(cpu: int = None):
    """boot_cpu_data.x86_capability[] as u32 words (the X86_FEATURE_* bits,
    arch/x86/include/asm/cpufeatures.h), or None without the type."""
    addr = symbols.lookup("boot_cpu_data")
    if addr is None or not types.has_member("struct cpuinfo_x86", "x86_capability"):
        return None
    off, t = types.member("struct cpuinfo_x86", "x86_capability")
    raw = machine.read_kernel(addr + off, t.sizeof, cpu)
    return [int.from_bytes(raw[i:i + 4], "little") for i in range(0, len(raw) - 3, 4)]


def tss(cpu: int):
    """The per-cpu x86_hw_tss (cpu_tss_rw.x86_tss) as the kernel keeps it."""
    size = types.sizeof("struct x86_hw_tss") if types.has("struct x86_hw_tss") else 104
    off = types.offsetof("struct tss_struct", "x86_tss") if types.has("struct tss_struct") else 0
    raw = machine.read_kernel(percpu.address("cpu_tss_rw", cpu) + off, max(size, 104))
    return decode_tss64(raw)


def kernel_gs_base(cpu: int) -> int:
    """The value GS_BASE holds in kernel mode: this CPU's per-cpu offset."""
    return percpu.offset(cpu)


def _wrmsr_slots(table):
    """(is_wrmsr_call(slot) for an indirect call's slot at a link address,
    whether write_msr takes the value as one u64).  With the DWARF: the
    pv_ops slots of write_msr and write_msr_safe; without it, any pv_ops
    slot (syscall_init() makes no other paravirt call).  A kernel without
    pv_ops writes with the wrmsr instruction."""
    from gdbext.kernel import syscall_tables
    pv = table.link_address("pv_ops")
    if pv is None:
        return (lambda slot: False), False
    template = "struct paravirt_patch_template"
    try:
        slots = {pv + types.offsetof(template, f"cpu.{m}") for m in ("write_msr", "write_msr_safe")
                 if types.has_member(template, f"cpu.{m}")}
        params = types.member(template, "cpu.write_msr")[1].strip_typedefs().target().fields()
    except (errors.KxError, AttributeError, RuntimeError):
        size = syscall_tables.symbol_size(syscall_tables.LinkSymbols(table), "pv_ops", limit=1 << 12)
        return (lambda slot: pv <= slot < pv + size), False
    # write_msr(msr, low, high) up to 6.x; write_msr(msr, u64 val) later.
    return (lambda slot: slot in slots), len(params) == 2


def syscall_init_writes(cpu: Optional[int] = None) -> Optional[Dict[int, Optional[int]]]:
    """{MSR index: value at run addresses (None: computed at run time)}
    that syscall_init() writes on `cpu`'s path, read from its code; None
    when the code or the DWARF it needs is not there, or does not decode."""
    from gdbext.kernel import syscall_tables
    table = symbols.table()
    start = table.link_address("syscall_init") if isinstance(table, symbols.SymbolTable) else None
    if start is None:
        return None
    slide = table.slide

    def run(link: int) -> int:
        return link + slide if relocatable(link) else link
    try:
        is_wrmsr, value_in_rsi = _wrmsr_slots(table)
        size = syscall_tables.symbol_size(syscall_tables.LinkSymbols(table), "syscall_init", limit=4096)
        code = syscall_tables.image().read(start, size)
        writes = x86_msr_writes.msr_writes(
            code, start, lambda a: machine.read_kernel(run(a), 1, cpu)[0], is_wrmsr,
            lambda a: any(n.endswith("__x86_return_thunk") for n in table.names_at(run(a))), value_in_rsi)
    except errors.KxError:
        return None
    return {w.index: None if w.value is None else run(w.value) for w in writes}


# Before the code is decoded, or when it does not decode: syscall_init()'s
# SYSCALL_MASK is 0x257fd5 since "x86/syscall: Maximize MSR_SYSCALL_MASK"
# (5.14, 6de4ac1d03f7), 0x47700 before; it skips CSTAR on Intel since
# "x86/cpu: Don't write CSTAR MSR on Intel CPUs" (5.18, 9c7e2634f647).
def _fallback_msr(index: int):
    known = version.version()
    if index == msrdec.IA32_FMASK:
        return msrdec.SFMASK_BEFORE_5_14 if (0, 0) < known < (5, 14) else msrdec.EXPECTED_SFMASK
    intel = vendor_is_intel()
    if intel is None:
        return None  # vendor unknown (no struct cpuinfo_x86 in the debug info): not verifiable
    if intel and not (0, 0) < known < (5, 18):
        return 0
    return symbols.lookup("entry_SYSCALL_compat")


CR4_FRED = 1 << 32        # Intel's FRED specification, 4.1
# With FRED on, syscall_init() skips idt_syscall_init() (6.9+, cpu/common.c):
# the SYSCALL/SYSENTER entry MSRs keep whatever they held and are not used.
NOT_PROGRAMMED_UNDER_FRED = (msrdec.IA32_LSTAR, msrdec.IA32_CSTAR, msrdec.IA32_FMASK,
                             msrdec.IA32_SYSENTER_CS, msrdec.IA32_SYSENTER_ESP, msrdec.IA32_SYSENTER_EIP)


def fred_state(cpu: int) -> Dict:
    """How this CPU enters the kernel: FRED (CR4.FRED, CONFIG_X86_FRED 6.9+)
    or the IDT with SYSCALL/SYSENTER.  `built_in` from the kernel's own
    asm_fred_entrypoint_user; `enabled` from CR4 as the gdbstub gives it
    (None when CR4 is not readable)."""
    built_in = symbols.lookup("asm_fred_entrypoint_user") is not None
    cr4 = machine.registers(cpu).get("cr4")
    enabled = None if cr4 is None else bool(cr4 & CR4_FRED)
    if enabled:
        how = "FRED: every event, syscall included, enters through IA32_FRED_CONFIG"
    elif built_in:
        how = ("IDT and SYSCALL/SYSENTER: FRED is built in but off on this CPU "
               "(CR4.FRED=0: no FRED in the CPU, or fred=off)")
    else:
        how = "IDT and SYSCALL/SYSENTER (no FRED in this kernel)"
    return {"fred_built_in": built_in, "fred_enabled": enabled, "mechanism": how}


def expected_msr(cpu: int, index: int):
    """The value the kernel programs into MSR `index` on `cpu`, or None."""
    sym = symbols.lookup
    if index in NOT_PROGRAMMED_UNDER_FRED or index == msrdec.IA32_FRED_CONFIG:
        fred = fred_state(cpu)["fred_enabled"]
        if index == msrdec.IA32_FRED_CONFIG:
            entry = sym("asm_fred_entrypoint_user")
            return msrdec.expected_fred_config(entry) if fred and entry is not None else None
        if fred:
            return None
    if index in (msrdec.IA32_CSTAR, msrdec.IA32_FMASK):
        writes = syscall_init_writes(cpu)
        if writes is None:
            return _fallback_msr(index)
        # Not written (CSTAR on Intel since 5.18): what the CPU came up with, 0.
        return writes.get(index, 0)
    if index == msrdec.IA32_LSTAR:
        return sym("entry_SYSCALL_64")
    if index == msrdec.IA32_STAR:
        return msrdec.expected_star()
    if index == msrdec.IA32_SYSENTER_CS:
        # enable_sep_cpu() (cpu/common.c) on i386, syscall_init() on x86-64.
        return arch.current().kernel_cs
    if index == msrdec.IA32_SYSENTER_EIP:
        return sym("entry_SYSENTER_compat") or sym("entry_SYSENTER_32")
    if index == msrdec.IA32_SYSENTER_ESP:
        # cpu_entry_stack(cpu) + 1, which is also what load_sp0() put in the
        # TSS: TSS.sp0 stays the entry stack (switch_to.h), on i386 too
        # (enable_sep_cpu(), "x86/entry/32: Use the trampoline stack").
        try:
            return arch.current().entry_stack_top(cpu)
        except errors.KxError:
            return None
    if index == msrdec.IA32_TSC_AUX:
        # setup_getcpu(): vdso_encode_cpunode(cpu, early_cpu_to_node(cpu)).
        node = 0
        if symbols.lookup("numa_node") is not None:
            node = int.from_bytes(percpu.read("numa_node", cpu, 4), "little", signed=True)
        return (max(node, 0) << 12) | cpu
    if index == msrdec.IA32_GS_BASE:
        return kernel_gs_base(cpu)
    return None


def top_of_stack(cpu: int):
    """The current task's kernel stack top as the entry code sees it:
    per-cpu cpu_current_top_of_stack up to 6.1; pcpu_hot.top_of_stack from
    6.2 ("x86/percpu: Move cpu_current_top_of_stack to pcpu_hot") to 6.14;
    cpu_current_top_of_stack again from 6.15 when pcpu_hot went away.
    Before "x86/process/64: Move cpu_current_top_of_stack out of TSS"
    (5.13, 1591584e2e76) it was no variable but the TSS's sp1 (5.10:
    #define cpu_current_top_of_stack cpu_tss_rw.x86_tss.sp1)."""
    if symbols.lookup("pcpu_hot") is not None and types.has_member("struct pcpu_hot", "top_of_stack"):
        return percpu.read_u64("pcpu_hot", cpu, "top_of_stack", "struct pcpu_hot")
    if symbols.lookup("cpu_current_top_of_stack") is not None:
        return percpu.read_u64("cpu_current_top_of_stack", cpu)
    if symbols.lookup("cpu_tss_rw") is not None:
        return tss(cpu).rsp[1]
    return None


CPU_ENTRY_AREA_BASE = 0xFFFFFE0000000000  # 4-level paging: pgtable_64_types.h


def in_cpu_entry_area(address: int) -> bool:
    # cpu_entry_area spans one P4D slot (512 GiB) at CPU_ENTRY_AREA_BASE.
    return CPU_ENTRY_AREA_BASE <= address < CPU_ENTRY_AREA_BASE + (1 << 39)
