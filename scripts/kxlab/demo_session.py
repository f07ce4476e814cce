"""The scripted part of `./scripts/lab demo`, run inside gdb after attaching.

It stops the workload at entry_SYSCALL_64 on its write of "KX-MARK\n", shows
what kx sees there (the decoded event first), follows the call into C,
traces the next 20 syscalls, then detaches and lets the guest run on."""
import gdb

from kxlab.demo_steps import banner, show, show_steps, stop_at


def main():
    banner("catch the workload's write(1, \"KX-MARK\\n\", 8) at entry_SYSCALL_64")
    # rax = __NR_write, rdx = 8: the workload's marker write (see scripts/guest/kxwork.c).
    stop_at("*entry_SYSCALL_64", "$rax == 1 && $rdx == 8")
    show("info registers rip rax rdi rsi rdx rcx r11")
    commands = [c for c in globals().get("KX_DEMO_COMMANDS", DEMO_COMMANDS)]
    show_steps(commands)
    # Into C on the same vCPU: pt_regs are complete and bt crosses into user mode.
    thread = gdb.selected_thread().num
    banner("on to ksys_write on the same vCPU")
    stop_at("ksys_write", "$_thread == %d && $rdx == 8" % thread)
    show_steps(LATER_COMMANDS)
    banner("detach: the guest runs on")
    gdb.execute("detach")


# What kx can show at that point; grows as kx grows.
DEMO_COMMANDS = [
    ("the syscall, decoded: task, nr -> name, arguments, dispatch", "kx event"),
    ("where `syscall` jumps, with which selectors and flags (MSRs)", "kx msr"),
    ("the stack the CPU switches to (TSS)", "kx tss"),
    ("the int 0x80 gate", "kx idt 0x80"),
    ("the task making the call (current, before swapgs)", "kx task"),
]
LATER_COMMANDS = [
    ("what user space handed the kernel: pt_regs", "kx regs"),
    ("the backtrace, down to the user-mode frame", "bt"),
    ("trace the next 20 syscalls without stopping", "kx trace --count 20"),
    ("the kx commands", "help kx"),
]

main()
