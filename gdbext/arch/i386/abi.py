"""The i386 kernel's one syscall ABI and its entry stubs (6.1,
arch/x86/entry/entry_32.S and common.c).

- int $0x80: IDT gate 0x80 -> entry_INT80_32, which pushes orig_ax (eax)
  and SAVE_ALL's registers (struct pt_regs) and calls
  do_int80_syscall_32(regs).
- sysenter: MSR SYSENTER_EIP -> entry_SYSENTER_32, reached from the vDSO's
  __kernel_vsyscall; it calls do_SYSENTER_32(regs), which ends in `return
  do_fast_syscall_32(regs)`.
Both dispatch through ia32_sys_call() (a switch, "x86/syscall: Don't force
use of indirect calls for system calls", 6.1.85); sys_call_table stays for
tracing.  nr in eax, arguments in ebx ecx edx esi edi ebp.
"""
from gdbext.arch.base import EntryStub, SyscallAbi

# int $0x80 pushes an IRET frame (SDM Vol.3A 6.12.1: EIP, CS, EFLAGS, ESP, SS).
BY_IRET_FRAME = ("the IRET frame", "the IRET frame")

INT80 = EntryStub("entry_INT80_32", "int $0x80", ("do_int80_syscall_32",), live_return=BY_IRET_FRAME)
SYSENTER = EntryStub("entry_SYSENTER_32", "sysenter", ("do_SYSENTER_32",),
                     ("__begin_SYSENTER_singlestep_region",), c_tail="do_fast_syscall_32")

ABI_I386 = SyscallAbi(
    name="32", aliases=("i386", "ia32", "x86", "int80"), label="i386", bits=32, nr_reg="eax",
    arg_regs=("ebx", "ecx", "edx", "esi", "edi", "ebp"), ptregs_nr="orig_ax",
    ptregs_args=("bx", "cx", "dx", "si", "di", "bp"), ptregs_ret="ax", stubs=(INT80, SYSENTER),
    table="sys_call_table", handler_prefixes=("__ia32_sys_", "sys_"), switch="ia32_sys_call",
    caller="do_int80_syscall_32() / do_fast_syscall_32()", table_label="i386",
    entry_text="an i386 entry (int $0x80 or sysenter)")

ABIS = (ABI_I386,)
