"""The user frames around the vDSO's __kernel_vsyscall, for `bt` across an
i386 syscall entry (6.1, arch/x86/entry/vdso/vdso32/system_call.S):

    __kernel_vsyscall: pushl %ecx; pushl %edx; pushl %ebp
                       movl %esp, %ebp; sysenter      (X86_FEATURE_SEP)
                       int $0x80
    int80_landing_pad: popl %ebp; popl %edx; popl %ecx; ret

SYSENTER saves no user state (SDM Vol.2B SYSENTER); the user esp is in ebp.
The kernel returns to int80_landing_pad, mm->context.vdso +
vdso_image_32.sym_int80_landing_pad (common.c do_fast_syscall_32, which
sets regs->ip to it; SYSEXIT loads EIP from EDX and ESP from ECX).  The
int $0x80 fallback lands there too, through the IRET frame.  At the
landing pad the stack holds the three pushes and, above them, the return
address into __kernel_vsyscall's caller.

Used from the frame unwinder: no thread or frame is selected; kernel data
is read physically (the vCPU may be on the PTI user page table, which maps
no lowmem; lowmem's physical address is virt - PAGE_OFFSET, asm/page_32.h).
"""
from typing import Callable, Dict, Optional

from gdbext import errors
from gdbext.arch.base import UserFrame
from gdbext.decoders.bits import MASK32

LANDING_PAD_CODE = bytes.fromhex("5d5a59c3")   # popl %ebp; popl %edx; popl %ecx; ret
INT80 = bytes.fromhex("cd80")                  # int $0x80, just before the landing pad
EFLAGS_IF = 1 << 9     # SYSENTER clears IF; do_SYSENTER_32 sets it in pt_regs again
USER_CS, USER_DS = 0x73, 0x7B                  # __USER_CS, __USER_DS (asm/segment.h, x86-32)


def _u32(data: bytes, at: int = 0) -> int:
    return int.from_bytes(data[at:at + 4], "little")


def landing_pad(cpu: int, regs: Dict[str, int], read: Callable[[int, int], bytes]) -> int:
    """int80_landing_pad in the vDSO of the task running on `cpu`, at an
    entry_SYSENTER_32 with registers `regs`: the kernel's own sum where
    `read` reaches kernel data, else (on the PTI user page table) found
    from __kernel_vsyscall's caller."""
    try:
        return kernel_landing_pad(cpu, read)
    except errors.KxError:
        return _landing_pad_by_caller(regs, read)


def kernel_landing_pad(cpu: int, read: Callable[[int, int], bytes]) -> int:
    """mm->context.vdso + vdso_image_32.sym_int80_landing_pad of `cpu`'s task."""
    from gdbext.kernel import symbols, types
    names = ("__per_cpu_offset", "current_task", "vdso_image_32")
    found = {n: symbols.lookup(n) for n in names}
    for name, address in found.items():
        if address is None:
            raise errors.MissingSymbol(name)

    def u32(address: int) -> int:
        return _u32(read(address, 4))
    offset = u32(found["__per_cpu_offset"] + 4 * cpu)
    task = u32(found["current_task"] + offset)
    mm = u32(task + types.offsetof("struct task_struct", "mm"))
    if not mm:
        raise errors.KxError("the task on this CPU has no mm (a kernel thread)")
    base = u32(mm + types.offsetof("struct mm_struct", "context.vdso"))
    pad = u32(found["vdso_image_32"] + types.offsetof("struct vdso_image", "sym_int80_landing_pad"))
    if not base:
        raise errors.KxError("mm->context.vdso is NULL: the task has no vDSO")
    return (base + pad) & MASK32


# call *%reg (ff /2, mod 11): the registers __kernel_vsyscall and sysenter
# leave as the caller had them (eax is the syscall number, ebp the stack).
CALL_REGISTERS = {0xD1: "ecx", 0xD2: "edx", 0xD3: "ebx", 0xD6: "esi", 0xD7: "edi"}
CALL_GS = bytes.fromhex("65ff15")   # call *%gs:disp32, glibc's AT_SYSINFO slot in its TCB


def _landing_pad_by_caller(regs: Dict[str, int], read: Callable[[int, int], bytes]) -> int:
    """The landing pad in the __kernel_vsyscall the caller called: its
    target from the call instruction before the return address, then the
    int $0x80 and pops in that code (vdso32/system_call.S)."""
    ret = _u32(read((regs["ebp"] + 12) & MASK32, 4))
    code = read((ret - 7) & MASK32, 7)
    if code[-2] == 0xFF and code[-1] in CALL_REGISTERS:
        target = regs[CALL_REGISTERS[code[-1]]]
    elif code[:3] == CALL_GS and regs.get("gs_base") is not None:
        target = _u32(read((regs["gs_base"] + _u32(code, 3)) & MASK32, 4))
    else:
        raise errors.KxError("the call into __kernel_vsyscall is not one kx can follow")
    body = read(target & MASK32, 64)
    at = body.find(INT80 + LANDING_PAD_CODE)
    if at < 0:
        raise errors.KxError(f"no int $0x80 landing pad at {target:#x}")
    return (target + at + len(INT80)) & MASK32


def sysenter_frame(regs: Dict[str, int], cpu: int, read: Callable[[int, int], bytes]) -> UserFrame:
    """The user frame an entry_SYSENTER_32 stopped before pt_regs returns
    to: the landing pad, with the stack __kernel_vsyscall left (ebp)."""
    pad, sp = landing_pad(cpu, regs, read), regs["ebp"] & MASK32
    user = dict(regs, eip=pad, esp=sp, ebp=sp, edx=pad, ecx=sp, eflags=regs["eflags"] | EFLAGS_IF,
                cs=USER_CS, ss=USER_DS)
    return UserFrame(user, "32", "the vDSO's landing pad; sysenter left the user esp in ebp")


def caller_frame(regs: Dict[str, int], read: Callable[[int, int], bytes]) -> Optional[UserFrame]:
    """__kernel_vsyscall's caller, if the user frame `regs` is at its
    landing pad (told by the code there: int $0x80, then the three pops
    and ret), from the pushes on the user stack."""
    pc, sp = regs["eip"] & MASK32, regs["esp"] & MASK32
    try:
        code = read(pc - len(INT80), len(INT80) + len(LANDING_PAD_CODE))
    except errors.MemoryUnreadable:
        return None
    if code != INT80 + LANDING_PAD_CODE:
        return None
    stack = read(sp, 16)
    user = dict(regs, ebp=_u32(stack, 0), edx=_u32(stack, 4), ecx=_u32(stack, 8), eip=_u32(stack, 12),
                esp=(sp + 16) & MASK32)
    return UserFrame(user, "32", f"__kernel_vsyscall's caller (return address at {sp + 12:#x})")
