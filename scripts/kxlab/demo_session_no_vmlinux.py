"""The scripted part of `./scripts/lab demo --no-vmlinux`, run inside gdb
attached with no file at all (a stripped bzImage is enough).

kx first reads the running kernel's own symbol table (kallsyms) and types
(BTF) from guest memory and gives them to gdb; from then on the story is the
demo's: the workload's write of "KX-MARK\\n" stopped at entry_SYSCALL_64,
what kx sees there, the call followed into C, a trace.  Where a step needs
what only DWARF has (source lines, CFI for gdb's unwinder), it says so."""
import gdb

from kxlab.demo_steps import banner, show, show_steps, stop_at


def main():
    show_steps(FROM_MEMORY)
    banner("catch the workload's write(1, \"KX-MARK\\n\", 8) at entry_SYSCALL_64 (a kallsyms address)")
    # rax = __NR_write, rdx = 8: the workload's marker write (see scripts/guest/kxwork.c).
    stop_at("*entry_SYSCALL_64", "$rax == 1 && $rdx == 8")
    show("info registers rip rax rdi rsi rdx rcx r11")
    show_steps(AT_ENTRY)
    thread = gdb.selected_thread().num
    banner("on to ksys_write on the same vCPU")
    stop_at("ksys_write", "$_thread == %d && $rdx == 8" % thread)
    show_steps(IN_C)
    banner("detach: the guest runs on")
    gdb.execute("detach")


FROM_MEMORY = [
    ("no vmlinux: kx reads the kernel's own kallsyms and BTF from memory (where each fact came from)",
     "kx kernel"),
    ("the KASLR slide, from the hardware state; the symbol file relocated to it", "kx kaslr"),
]
AT_ENTRY = [
    ("the syscall, decoded: signature from the kernel's ftrace metadata, handler from kallsyms",
     "kx event"),
    ("where `syscall` jumps, with which selectors and flags (MSRs)", "kx msr"),
    ("the stack the CPU switches to (TSS)", "kx tss"),
    ("the int 0x80 gate", "kx idt 0x80"),
    ("the task making the call: struct task_struct laid out from BTF", "kx task"),
]
IN_C = [
    ("what user space handed the kernel: pt_regs (BTF offsets)", "kx regs"),
    ("plain gdb on BTF types: the current task's name", "print $kx_current()->comm"),
    ("plain gdb on BTF types: struct pt_regs", "ptype struct pt_regs"),
    ("no DWARF, so no CFI: gdb's unwinder guesses past the first frame (kx regs above is exact)",
     "bt 3"),
    ("trace the next 20 syscalls without stopping", "kx trace --count 20"),
    ("the tasks (kx ps)", "kx ps"),
]

main()
