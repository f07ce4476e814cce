"""An i386 vCPU's state that the kernel model asks the architecture for:
the task's stack top as the TSS keeps it, and KASLR evidence.

6.1 on x86-32 keeps the current task's stack top in the TSS's sp1
(cpu_current_top_of_stack is `cpu_tss_rw.x86_tss.sp1`, asm/processor.h
and update_task_stack() in asm/switch_to.h); sp0 is the cpu_entry_area
entry (trampoline) stack that SAVE_ALL's switch_stacks leaves."""
from dataclasses import asdict, dataclass, field
from typing import List, Optional

from gdbext import machine
from gdbext.decoders import msr as msrdec
from gdbext.arch.base import SlideReadings
from gdbext.decoders.ptregs32 import selector32_name
from gdbext.decoders.tss import TSS32_SIZE, decode_tss32
from gdbext.kernel import percpu, symbols, types

ENTRY_STACK_REACH = 0x10000   # struct cpu_entry_area puts entry_stack_page just before the TSS


@dataclass
class Tss32Report:
    """One vCPU's 32-bit TSS as TR selects it (`kx tss --json` on i386)."""
    cpu: int
    selector: int
    base: int
    busy: bool
    limit: int
    sp: List[int]             # sp0-2 (ESP0-2)
    ss: List[int]             # ss0-2
    io_bitmap_base: int
    sp0_is: str
    sp1_is: str
    current_top_of_stack: Optional[int]
    selector_name: Optional[str]
    ss_names: List[Optional[str]]
    warnings: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def task_stack_top(cpu: int) -> Optional[int]:
    """cpu_tss_rw.x86_tss.sp1 of `cpu`, or None without the symbol/type."""
    if symbols.lookup("cpu_tss_rw") is None or not types.has_member("struct tss_struct", "x86_tss.sp1"):
        return None
    return percpu.read_ulong("cpu_tss_rw", cpu, "x86_tss.sp1", "struct tss_struct")


def kaslr_readings(table, cpu: int) -> SlideReadings:
    """No CPU-state source yet: kernel/kaslr.py's neutral sources (the
    banner, the build ID) decide."""
    return SlideReadings(notes={"idt": "not read on i386 yet"})


# The MSRs of the 32-bit syscall path: sysenter's three (there is no
# SYSCALL/LSTAR use on i386) and EFER for NX.
I386_MSRS = (msrdec.IA32_SYSENTER_CS, msrdec.IA32_SYSENTER_ESP, msrdec.IA32_SYSENTER_EIP, msrdec.IA32_EFER)


def msrs(cpu, names=None):
    """The MSRs `names` (default: I386_MSRS) of `cpu`, read and checked
    like x86-64's (rdmsr injection in 32-bit protected mode)."""
    from gdbext.arch.x86_64 import cpustate
    wanted = [msrdec.lookup_msr(str(n)) for n in names or ()] or [msrdec.MSR_BY_INDEX[i] for i in I386_MSRS]
    report = cpustate.msrs(cpu, wanted)
    for m in report:
        if m.value is None:
            continue
        if m.index == msrdec.IA32_SYSENTER_CS:
            # Named after the 32-bit GDT (decoders.msr names x86-64's).
            m.fields = {"selector": {"selector": m.value & 0xFFFF, "index": (m.value & 0xFFFF) >> 3,
                                     "rpl": m.value & 3, "name": selector32_name(m.value & 0xFFFF)}}
        elif m.index == msrdec.IA32_SYSENTER_ESP:
            sp0 = tss(report.cpu).sp[0]
            m.fields = {"tss_sp0": sp0, "is": "the cpu_entry_area entry stack top, = TSS.sp0 (enable_sep_cpu())"
                        if m.value == sp0 else "not TSS.sp0"}
    return report


def tss(cpu) -> Tss32Report:
    """The 32-bit TSS that `cpu`'s TR selects (SDM Vol.3A 8.2.1): the
    stacks the CPU loads on a privilege change and the I/O map base."""
    from gdbext.arch.x86_64 import cpustate, descriptor_tables
    cpu = machine.check_cpu(cpu)
    sysregs, entries = descriptor_tables.gdt(cpu)
    warnings: List[str] = []
    selector, slot = cpustate.tss_descriptor(sysregs, entries, warnings)
    base = slot.descriptor.base
    hw = decode_tss32(machine.read_kernel(base, TSS32_SIZE, cpu))
    top = task_stack_top(cpu)
    return Tss32Report(cpu=cpu, selector=selector, base=base, busy=slot.kind == "tss-busy",
                       limit=slot.descriptor.effective_limit, sp=[hw.esp0, hw.esp1, hw.esp2],
                       ss=[hw.ss0, hw.ss1, hw.ss2], io_bitmap_base=hw.io_map_base,
                       sp0_is=_sp0_is(hw.esp0, base), sp1_is=_sp1_is(hw.esp1, top),
                       current_top_of_stack=top, selector_name=selector32_name(selector),
                       ss_names=[selector32_name(s) for s in (hw.ss0, hw.ss1, hw.ss2)], warnings=warnings)


def _sp0_is(sp0: int, base: int) -> str:
    # 4.15+ ("x86/entry/32: Use the trampoline stack"): the CPU lands on the
    # small per-cpu entry stack of cpu_entry_area, and SAVE_ALL's
    # switch_stacks copies the frame to the task stack.  The seed's 2.6
    # kernels had the task's stack top here.
    if base - ENTRY_STACK_REACH <= sp0 <= base:
        return ("cpu_entry_area entry (trampoline) stack; SAVE_ALL switches to the task stack "
                "(2.6 had the task stack top here)")
    return symbols.format_address(sp0) or "unknown"


def _sp1_is(sp1: int, top: Optional[int]) -> str:
    # x86-32 keeps cpu_current_top_of_stack in sp1 (ring 1 is unused).
    return ("the current task's stack top (cpu_current_top_of_stack: Linux stores it in the unused "
            "ring-1 slot)" if top is not None and sp1 == top else "unknown")
