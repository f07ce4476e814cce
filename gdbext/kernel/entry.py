"""The kernel's entry points and where each one hands pt_regs to C.

Every entry stub builds struct pt_regs on the task stack and then calls a C
function with %rsp pointing at it (arch/x86/entry/entry_64.S,
entry_64_compat.S, idtentry.h).  So in the stub's frame, just after that
call, the stack pointer *is* the pt_regs address: the unwinder uses this, and
`kx regs` uses the call site to tell whether pt_regs are complete yet.
"""
from typing import Optional, Tuple

from gdbext import errors
from gdbext.kernel import symbols
from gdbext.kernel.objcache import ObjfileCache
from gdbext import machine

# entry stub -> the C functions it may call with pt_regs, newest kernel first.
SYSCALL_ENTRIES = {
    "entry_SYSCALL_64": ("do_syscall_64",),
    # int 0x80: an IDT entry since 6.7 / 6.1.66 ("x86/entry: Convert INT 0x80
    # emulation to IDTENTRY"); before that entry_INT80_compat.
    "asm_int80_emulation": ("int80_emulation",),
    "entry_INT80_compat": ("do_int80_syscall_32",),
    "entry_SYSENTER_compat": ("do_SYSENTER_32",),
    "entry_SYSCALL_compat": ("do_fast_syscall_32",),
}
# Labels inside those stubs that the symbol table may name instead.
_ALIASES = {
    "entry_SYSCALL_64_safe_stack": "entry_SYSCALL_64",
    "entry_SYSCALL_64_after_hwframe": "entry_SYSCALL_64",
    "entry_SYSENTER_compat_after_hwframe": "entry_SYSENTER_compat",
    "entry_SYSCALL_compat_safe_stack": "entry_SYSCALL_compat",
    "entry_SYSCALL_compat_after_hwframe": "entry_SYSCALL_compat",
}
# IDT stubs (idtentry.h) also call their C handler with %rsp = pt_regs.
_IDT_PREFIXES = ("asm_exc_", "asm_sysvec_", "asm_common_interrupt", "asm_spurious_interrupt")

_STUB_SCAN = 0x400  # entry stubs are shorter than this
_call_sites = ObjfileCache()


def entry_of(address: int) -> Optional[str]:
    """The entry stub containing `address` (canonical name), or None."""
    hit = symbols.table().describe(address, max_offset=_STUB_SCAN)
    if hit is None:
        return None
    name = _ALIASES.get(hit[0], hit[0])
    if name in SYSCALL_ENTRIES or name.startswith(_IDT_PREFIXES):
        return name
    return None


def is_syscall_entry(name: Optional[str]) -> bool:
    return name in SYSCALL_ENTRIES


def call_site(entry: str, cpu=None) -> Optional[Tuple[int, str]]:
    """(address of the `call` that passes pt_regs, callee name) in `entry`,
    found by decoding `e8 rel32` calls in the stub's code, or None."""
    if entry in _call_sites:
        return _call_sites[entry]
    start = symbols.lookup(entry)
    result = None
    if start is not None:
        callees = {symbols.lookup(c): c for c in SYSCALL_ENTRIES.get(entry, ()) if symbols.lookup(c)}
        try:
            code = machine.read_kernel(start, _STUB_SCAN, cpu)
        except errors.MemoryUnreadable:
            return None
        for i in range(len(code) - 5):
            if code[i] != 0xE8:
                continue
            target = (start + i + 5 + int.from_bytes(code[i + 1:i + 5], "little", signed=True)) & machine.MASK64
            if target in callees:
                result = (start + i, callees[target])
                break
    _call_sites[entry] = result
    return result


def pt_regs_pending(pc: int, cpu=None) -> Optional[str]:
    """If `pc` is inside a syscall entry stub before its C call, pt_regs on
    the stack are still being built (or are the previous entry's): say so."""
    name = entry_of(pc)
    if not is_syscall_entry(name):
        return None
    site = call_site(name, cpu)
    if site is None or pc <= site[0]:
        return (f"the CPU is in {name} before it calls into C: pt_regs on the stack "
                "are not (all) written yet, so they may hold the previous entry's values")
    return None
