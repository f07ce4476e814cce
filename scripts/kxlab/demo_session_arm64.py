"""The scripted part of `./scripts/lab demo --arch arm64`, run inside gdb.

It stops /bin/hello64's `svc #0` write (x8 = 64, x2 = 23: see
scripts/guest/arm64/hello64.S) at el0t_64_sync, the handler the EL0 64-bit
synchronous vector branches to, shows what kx sees there, follows the call
through el0_svc and do_el0_svc to invoke_syscall, where
sys_call_table[64] is the function that runs, traces 20 syscalls, then
detaches and lets the guest run on."""
import gdb

from kxlab.demo_steps import banner, show, show_steps, stop_at


def main():
    banner("catch hello64's write(1, \"Hello from svc (arm64)\\n\", 23) at el0t_64_sync")
    stop_at("*el0t_64_sync", "$x8 == 64 && $x2 == 23")
    show("info registers x8 x0 x1 x2 pc ELR_EL1 SPSR_EL1 SP_EL0")
    show_steps(AT_THE_VECTOR)
    thread = gdb.selected_thread().num
    banner("on to invoke_syscall on the same task: el0_svc -> do_el0_svc -> el0_svc_common")
    stop_at("invoke_syscall", "$_thread == %d && $x1 == 64" % thread)
    show_steps(AT_INVOKE_SYSCALL)
    banner("detach: the guest runs on")
    gdb.execute("detach")


AT_THE_VECTOR = [
    ("the syscall, decoded from the live registers: x8 -> write, x0-x2, ELR_EL1", "kx event"),
    ("VBAR_EL1 and the 16 vector entries (svc #0 from EL0 lands at +0x400)", "kx vectors"),
    ("the system registers: ESR_EL1 says SVC64", "kx sysregs"),
    ("the task (SP_EL0 is still the user sp: current comes from __entry_task)", "kx task"),
    ("bt: the user frame from ELR_EL1 / SP_EL0", "bt"),
]
AT_INVOKE_SYSCALL = [
    ("pt_regs: syscallno is stored now", "kx regs"),
    ("sys_call_table[64], the function invoke_syscall calls", "kx syscalls --abi 64 64"),
    ("the same entry as gdb reads it", "info symbol ((unsigned long *)&sys_call_table)[64]"),
    ("kx event from pt_regs", "kx event"),
    ("the table in memory against the vmlinux file (relocations applied)", "kx syscalls --check"),
    ("trace the next 20 syscalls without stopping", "kx trace --count 20"),
]

main()
