"""x86-64's syscall ABIs and entry stubs.

- 64: `syscall` (LSTAR -> entry_SYSCALL_64), nr in rax, arguments in rdi
  rsi rdx r10 r8 r9 (r10 because SYSCALL clobbers rcx; SDM Vol.2B SYSCALL,
  arch/x86/entry/entry_64.S).
- 32 (ia32 compat): `int $0x80`, `sysenter` and `syscall` from 32-bit code,
  nr in eax, arguments in ebx ecx edx esi edi ebp (entry_64_compat.S).
- x32: the 64-bit entry with __X32_SYSCALL_BIT set in the number
  (arch/x86/include/uapi/asm/unistd.h); reached through "64".
"""
from gdbext.arch.base import EntryStub, SyscallAbi

X32_SYSCALL_BIT = 0x40000000   # arch/x86/include/uapi/asm/unistd.h
# SYSCALL leaves the return RIP in RCX and RFLAGS in R11 (SDM Vol.2B
# SYSCALL); int $0x80 pushes an IRET frame (SDM Vol.3A 6.14.2).
BY_SYSCALL = ("rcx", "r11")
BY_IRET_FRAME = ("the IRET frame", "the IRET frame")

SYSCALL_64 = EntryStub(
    "entry_SYSCALL_64", "syscall", ("do_syscall_64",),
    ("entry_SYSCALL_64_safe_stack", "entry_SYSCALL_64_after_hwframe"), live_return=BY_SYSCALL)
# int 0x80: an IDT entry since 6.7 / 6.1.66 ("x86/entry: Convert INT 0x80
# emulation to IDTENTRY"); before that entry_INT80_compat.
# int80_emulation() is entered with orig_ax = -1 and the number in ax: it
# stores orig_ax itself (arch/x86/entry/common.c).
INT80_IDT = EntryStub("asm_int80_emulation", "int $0x80", ("int80_emulation",), c_nr_member="ax",
                      live_return=BY_IRET_FRAME)
INT80_COMPAT = EntryStub("entry_INT80_compat", "int $0x80", ("do_int80_syscall_32",), live_return=BY_IRET_FRAME)
# do_SYSENTER_32() ends in `return do_fast_syscall_32(regs)` (common.c, 6.1
# and 6.12): one sysenter passes through both.
SYSENTER = EntryStub("entry_SYSENTER_compat", "sysenter", ("do_SYSENTER_32",),
                     ("entry_SYSENTER_compat_after_hwframe",), c_tail="do_fast_syscall_32")
SYSCALL_COMPAT = EntryStub(
    "entry_SYSCALL_compat", "syscall (32-bit code)", ("do_fast_syscall_32",),
    ("entry_SYSCALL_compat_safe_stack", "entry_SYSCALL_compat_after_hwframe"), live_return=BY_SYSCALL)

ABI_64 = SyscallAbi(
    name="64", aliases=("x64", "x86_64", "x86-64"), label="64-bit", bits=64, nr_reg="rax",
    arg_regs=("rdi", "rsi", "rdx", "r10", "r8", "r9"), ptregs_nr="orig_ax",
    ptregs_args=("di", "si", "dx", "r10", "r8", "r9"), ptregs_ret="ax", stubs=(SYSCALL_64,),
    table="sys_call_table", handler_prefixes=("__x64_sys_", "sys_"), switch="x64_sys_call",
    caller="do_syscall_64()", table_label="64-bit")
ABI_32 = SyscallAbi(
    name="32", aliases=("ia32", "i386", "compat"), label="i386 (compat)", bits=32, nr_reg="eax",
    arg_regs=("ebx", "ecx", "edx", "esi", "edi", "ebp"), ptregs_nr="orig_ax",
    ptregs_args=("bx", "cx", "dx", "si", "di", "bp"), ptregs_ret="ax",
    stubs=(INT80_IDT, INT80_COMPAT, SYSENTER, SYSCALL_COMPAT),
    table="ia32_sys_call_table", handler_prefixes=("__ia32_sys_", "sys_"),
    compat_prefixes=("__ia32_compat_sys_", "compat_sys_"), switch="ia32_sys_call",
    caller="do_int80_syscall_32() / do_int80_emulation() / do_fast_syscall_32()", table_label="ia32",
    entry_text="an ia32 entry (int 0x80, sysenter or 32-bit syscall)")
ABI_X32 = SyscallAbi(
    name="x32", aliases=(), label="x32", bits=64, nr_reg="rax",
    arg_regs=ABI_64.arg_regs, ptregs_nr="orig_ax", ptregs_args=ABI_64.ptregs_args, ptregs_ret="ax",
    stubs=(), table="x32_sys_call_table", handler_prefixes=("__x64_sys_", "sys_"),
    compat_prefixes=("__x32_compat_sys_", "compat_sys_"), switch="x32_sys_call",
    caller="do_syscall_64() (nr with __X32_SYSCALL_BIT)", table_label="x32", selectable=False)

ABIS = (ABI_64, ABI_32, ABI_X32)
