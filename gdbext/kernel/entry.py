"""The kernel's entry points and where each one hands pt_regs to C.

Every syscall entry stub builds struct pt_regs on the task stack and then
calls a C function with the stack pointer at them (on x86-64:
arch/x86/entry/entry_64.S, entry_64_compat.S, idtentry.h).  So in the
stub's frame, just after that call, the stack pointer *is* the pt_regs
address: the unwinder uses this, and `kx regs` uses the call site to tell
whether pt_regs are complete yet.  Which stubs exist, and how a call looks
in machine code, is the architecture's (gdbext/arch).
"""
from typing import Optional, Tuple

from gdbext import arch, errors
from gdbext.arch.base import EntryStub
from gdbext.kernel import backend, symbols
from gdbext.kernel.objcache import ObjfileCache

_STUB_SCAN = 0x400  # entry stubs are shorter than this
_call_sites = ObjfileCache()


def entry_of(address: int) -> Optional[str]:
    """The entry stub containing `address` (canonical name), or None."""
    hit = symbols.table().describe(address, max_offset=_STUB_SCAN)
    if hit is None:
        return None
    a = arch.current()
    found = a.stubs().get(hit[0])
    if found is not None:
        return found[1].name
    if hit[0].startswith(a.other_entry_prefixes):
        return hit[0]
    return None


def syscall_stub(name: Optional[str]) -> Optional[EntryStub]:
    """The syscall entry stub called `name`, or None (an IDT stub, say)."""
    found = arch.current().stubs().get(name) if name else None
    return found[1] if found else None


def is_syscall_entry(name: Optional[str]) -> bool:
    return syscall_stub(name) is not None


def call_site(entry: str, cpu=None) -> Optional[Tuple[int, str, int]]:
    """(address of the call that passes pt_regs, callee name, address after
    the call) in `entry`, found by decoding the stub's calls, or None."""
    if entry in _call_sites:
        return _call_sites[entry]
    start = symbols.lookup(entry)
    stub = syscall_stub(entry)
    result = None
    if start is not None and stub is not None:
        callees = {symbols.lookup(c): c for c in stub.c_functions if symbols.lookup(c)}
        try:
            code = backend.read_kernel(start, _STUB_SCAN, cpu)
        except errors.MemoryUnreadable:
            return None
        for address, target, after in arch.current().direct_calls(code, start):
            if target in callees:
                result = (address, callees[target], after)
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
