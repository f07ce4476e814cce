"""arm64's syscall ABIs and entry stubs.

- 64: `svc #0` from AArch64 EL0, nr in x8, arguments in x0-x5
  (arch/arm64/kernel/syscall.c: el0_svc_common(regs, regs->regs[8], ...)).
- 32 (compat): `svc 0` from AArch32 EL0, nr in r7, arguments in r0-r5 (the
  EABI; do_el0_svc_compat: regs->regs[7]); the AArch32 registers are the
  low halves of x0-x14 at EL1 (Arm ARM D1.20.1).

Both enter through VBAR_EL1 (`vectors`, or `tramp_vectors` under KPTI):
the EL0 64-bit or 32-bit synchronous entry branches to el0t_64_sync /
el0t_32_sync (entry.S, 5.15+: "arm64: entry: handle all vectors
with C"), which saves pt_regs and calls el0t_64_sync_handler(regs)
(entry-common.c); that reads ESR_EL1 and calls el0_svc(regs) ->
do_el0_svc -> el0_svc_common -> invoke_syscall -> sys_call_table[nr].
Until el0_svc_common stores it, pt_regs->syscallno is NO_SYSCALL and the
number is in pt_regs->regs[8] (regs[7] for compat).
"""
from gdbext.arch.base import EntryStub, SyscallAbi

# The exception saved the return address in ELR_EL1 and PSTATE in SPSR_EL1
# (Arm ARM D1.10.1); gdb's names for them.
BY_EXCEPTION = ("ELR_EL1", "SPSR_EL1")

SVC_64 = EntryStub("el0t_64_sync", "svc #0", ("el0t_64_sync_handler",), c_nr_member="x8",
                   c_tail="el0_svc", live_return=BY_EXCEPTION)
SVC_32 = EntryStub("el0t_32_sync", "svc 0 (AArch32)", ("el0t_32_sync_handler",), c_nr_member="x7",
                   c_tail="el0_svc_compat", live_return=BY_EXCEPTION)

ABI_64 = SyscallAbi(
    name="64", aliases=("arm64", "aarch64"), label="64-bit", bits=64, nr_reg="x8",
    arg_regs=("x0", "x1", "x2", "x3", "x4", "x5"), ptregs_nr="syscallno",
    ptregs_args=("orig_x0", "x1", "x2", "x3", "x4", "x5"), ptregs_ret="x0", stubs=(SVC_64,),
    table="sys_call_table", handler_prefixes=("__arm64_sys_",),
    caller="invoke_syscall()", table_label="64-bit")
ABI_32 = SyscallAbi(
    name="32", aliases=("compat", "aarch32", "arm"), label="AArch32 (compat)", bits=32, nr_reg="r7",
    arg_regs=("r0", "r1", "r2", "r3", "r4", "r5"), ptregs_nr="syscallno",
    ptregs_args=("orig_x0", "x1", "x2", "x3", "x4", "x5"), ptregs_ret="x0", stubs=(SVC_32,),
    table="compat_sys_call_table", handler_prefixes=("__arm64_sys_",),
    compat_prefixes=("__arm64_compat_sys_",), caller="invoke_syscall() (do_el0_svc_compat)",
    table_label="compat", entry_text="el0t_32_sync (svc from AArch32)")

ABIS = (ABI_64, ABI_32)
