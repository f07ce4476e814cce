"""An i386 vCPU's state that the kernel model asks the architecture for:
the task's stack top as the TSS keeps it, and KASLR evidence.

6.1 on x86-32 keeps the current task's stack top in the TSS's sp1
(cpu_current_top_of_stack is `cpu_tss_rw.x86_tss.sp1`, asm/processor.h
and update_task_stack() in asm/switch_to.h); sp0 is the cpu_entry_area
entry (trampoline) stack that SAVE_ALL's switch_stacks leaves."""
from typing import Optional

from gdbext import errors
from gdbext.arch.base import SlideReadings
from gdbext.kernel import percpu, symbols, types


def task_stack_top(cpu: int) -> Optional[int]:
    """cpu_tss_rw.x86_tss.sp1 of `cpu`, or None without the symbol/type."""
    if symbols.lookup("cpu_tss_rw") is None or not types.has_member("struct tss_struct", "x86_tss.sp1"):
        return None
    return percpu.read_ulong("cpu_tss_rw", cpu, "x86_tss.sp1", "struct tss_struct")


def kaslr_readings(table, cpu: int) -> SlideReadings:
    """No CPU-state source yet: kernel/kaslr.py's neutral sources (the
    banner, the build ID) decide."""
    return SlideReadings(notes={"idt": "not read on i386 yet"})


def msrs(cpu, names=None):
    raise errors.NotSupported("kx msr does not read an i386 kernel's MSRs yet")


def tss(cpu):
    raise errors.NotSupported("kx tss does not decode an i386 kernel's 32-bit TSS yet")
