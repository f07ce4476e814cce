# SPDX-License-Identifier: GPL-2.0-or-later
"""KPTI on arm64 (CONFIG_UNMAP_KERNEL_AT_EL0): the kernel's page tables
and vector table while a CPU runs on the trampoline's.

While user code runs, and in the trampoline vectors' first instructions,
TTBR1_EL1 holds tramp_pg_dir, which maps nothing of the kernel but the
trampoline at its fixmap alias (TRAMP_VALIAS), and VBAR_EL1 holds that
alias of tramp_vectors (the per-cpu this_cpu_vector:
arch/arm64/include/asm/vectors.h arm64_get_bp_hardening_vector, TRAMP_VALIAS
+ SZ_2K * slot).  tramp_map_kernel (arch/arm64/kernel/entry.S) reaches
swapper_pg_dir by adding TRAMP_SWAPPER_OFFSET to TTBR1_EL1: the link
distance swapper_pg_dir - tramp_pg_dir, which vmlinux.lds.S asserts (6.1,
6.12).
"""
from typing import Callable, Dict, Optional

from gdbext import errors
from gdbext.decoders import arm64_paging
from gdbext.decoders.paging import PageFault


def _phys(va: int, root: int, read_u64: Callable[[int], int], va_bits: int) -> Optional[int]:
    try:
        return arm64_paging.translate(va, root, read_u64, va_bits).phys
    except (PageFault, errors.MemoryUnreadable):
        return None


def kernel_root(regs: Dict[str, int], read_u64: Callable[[int], int], va_bits: int) -> int:
    """TTBR1_EL1, or swapper_pg_dir's physical address while TTBR1_EL1
    holds tramp_pg_dir: the root that maps swapper_pg_dir onto itself."""
    from gdbext.kernel import symbols
    ttbr1 = regs.get("TTBR1_EL1") or 0
    tramp, swapper = symbols.lookup("tramp_pg_dir"), symbols.lookup("swapper_pg_dir")
    if tramp is None or swapper is None or _phys(swapper, ttbr1, read_u64, va_bits) is not None:
        return ttbr1
    candidate = (ttbr1 & arm64_paging.TTBR_BADDR_MASK) + (swapper - tramp)
    if _phys(swapper, candidate, read_u64, va_bits) == candidate:
        return candidate
    return ttbr1


def trampoline_alias(vbar: int, cpu: int) -> Optional[int]:
    """The run address in tramp_vectors that `vbar` aliases (the same
    physical page, through the CPU's own tables), or None when `vbar` is
    no alias of it."""
    from gdbext import machine
    from gdbext.kernel import symbols
    # tramp_vectors ends where tramp_exit_native (6.1) or tramp_exit (6.12) begins.
    start = symbols.lookup("tramp_vectors")
    end = next((a for a in map(symbols.lookup, ("tramp_exit_native", "tramp_exit", "__entry_tramp_text_end"))
                if a is not None), None)
    if start is None or end is None or start <= vbar < end:
        return None
    try:
        alias = machine.translate(vbar, cpu).phys
        image = machine.translate(start, cpu, root=machine.kernel_page_table(cpu)).phys
    except (PageFault, errors.KxError):
        return None
    delta = alias - image
    return start + delta if 0 <= delta < end - start else None
