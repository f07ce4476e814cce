"""The scripted part of `./scripts/lab demo --arch i386`, run inside gdb
after attaching: the seed's story on a real 32-bit kernel.

hello32 (scripts/guest/hello32.S) writes with `int $0x80`.  The demo stops
it at the gate's target, entry_INT80_32, and shows each step: the IDT gate,
the TSS the CPU took its kernel stack from, the call in the live registers
and the IRET frame, then SAVE_ALL's frame decoded as pt_regs in
do_int80_syscall_32, the table lookup, the handler, and a short trace."""
import gdb

from kxlab.demo_steps import banner, show_steps, stop_at

HELLO32_LEN = 30      # len("Hello from int $0x80 (32-bit)\n")


def main():
    banner("catch hello32's write(1, msg, %d) where int $0x80 lands: entry_INT80_32" % HELLO32_LEN)
    stop_at("*entry_INT80_32", "$eax == 4 && $edx == %d" % HELLO32_LEN)
    show_steps(AT_THE_GATE)
    thread = gdb.selected_thread().num
    banner("SAVE_ALL done: do_int80_syscall_32(regs) on the same vCPU (regs in eax: -mregparm=3)")
    stop_at("do_int80_syscall_32", "$_thread == %d" % thread)
    show_steps(AFTER_SAVE_ALL)
    banner("the handler the lookup found")
    stop_at("__ia32_sys_write", "$_thread == %d" % thread)
    show_steps(IN_THE_HANDLER)
    banner("detach: the guest runs on")
    gdb.execute("detach")


AT_THE_GATE = [
    ("the gate: IDT vector 0x80 -> entry_INT80_32, DPL 3 so user code may use it", "kx idt 0x80"),
    ("the TSS: where the CPU found its ring-0 stack (SS0:ESP0)", "kx tss"),
    ("the call, still in the live registers: eax = nr, ebx ecx edx = arguments", "kx event"),
    ("the IRET frame the CPU pushed: EIP, CS, EFLAGS, ESP, SS", "x/5wx $esp"),
    ("the task making the call (current_task, per-cpu)", "kx task"),
]
AFTER_SAVE_ALL = [
    ("SAVE_ALL's frame on the task stack, decoded as struct pt_regs", "kx regs"),
    ("the table lookup: nr 4 in the i386 table", "kx syscalls write"),
    ("the backtrace, down to the user-mode frame", "bt"),
]
IN_THE_HANDLER = [
    ("the call as the handler sees it", "kx event"),
    ("the backtrace: handler <- ia32_sys_call <- do_int80_syscall_32 <- entry_INT80_32 <- user", "bt"),
    ("trace the next 10 syscalls without stopping", "kx trace --count 10"),
]

main()
