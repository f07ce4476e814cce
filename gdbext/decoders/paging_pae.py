"""A pure PAE page-table walk (Intel SDM Vol.3A 4.4): the 3-level paging of
an i386 kernel built with CONFIG_X86_PAE (Debian's 686-pae).

CR3 bits 31:5 hold the page-directory-pointer table: 4 entries of 8 bytes,
indexed by va[31:30].  A PDPTE has P and no RW/US/XD bits (those are
reserved there), and points at a page directory (va[29:21]); a PDE with PS
maps a 2 MiB page, else it points at a page table (va[20:12]).  Linux calls
the levels pgd, pmd and pte (pud and p4d are folded).  Entries are 64-bit,
so the walk reads them with the same read_u64 and returns the structures
of paging.py (WalkStep, Translation, PageFault).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List

from gdbext.decoders import paging
from gdbext.decoders.bits import to_unsigned
from gdbext.decoders.paging import PageFault, Translation, WalkStep

PDPT_ADDR_MASK = 0xFFFFFFE0                       # CR3 bits 31:5
LINUX_LEVEL_NAMES_PAE = {"PDPT": "pgd", "PD": "pmd", "PT": "pte"}
_LEVELS = (("PDPT", 30, 0x3), ("PD", 21, 0x1FF), ("PT", 12, 0x1FF))
_RW, _US, _PS, _G, _XD = 1, 2, 7, 8, 63


def pdpt_address(cr3: int) -> int:
    return to_unsigned(cr3, 32, "CR3") & PDPT_ADDR_MASK


def page_indices(va: int) -> Dict[str, int]:
    va = to_unsigned(va, 32, "virtual address")
    return {level: (va >> shift) & mask for level, shift, mask in _LEVELS}


def translate(va: int, cr3: int, read_u64: Callable[[int], int]) -> Translation:
    """Walk the PAE tables rooted at `cr3` for the 32-bit address `va`."""
    va = to_unsigned(va, 32, "virtual address")
    table = pdpt_address(cr3)
    steps: List[WalkStep] = []
    writable = user = executable = True
    for level, shift, mask in _LEVELS:
        addr = table + ((va >> shift) & mask) * 8
        entry = paging._read(read_u64, addr)
        steps.append(WalkStep(level, addr, entry))
        if not entry & 1:
            raise PageFault(va, level, addr, entry, steps)
        if level != "PDPT":     # a PDPTE has no access rights (SDM Vol.3A Table 4-8)
            writable &= bool(entry >> _RW & 1)
            user &= bool(entry >> _US & 1)
            executable &= not (entry >> _XD & 1)
        if level == "PD" and entry >> _PS & 1:
            phys, size = (entry & paging.PDE_2M_ADDR_MASK) | (va & (paging.PAGE_SIZE_2M - 1)), paging.PAGE_SIZE_2M
        elif level == "PT":
            phys, size = (entry & paging.PHYS_ADDR_MASK) | (va & (paging.PAGE_SIZE_4K - 1)), paging.PAGE_SIZE_4K
        else:
            table = entry & paging.PHYS_ADDR_MASK
            continue
        return Translation(va=va, phys=phys, page_size=size, levels=steps, writable=writable, user=user,
                           executable=executable, global_page=bool(entry >> _G & 1),
                           linux_levels=dict(LINUX_LEVEL_NAMES_PAE))
    raise AssertionError("unreachable: PT level always returns")  # pragma: no cover


def describe_walk(va: int, steps: List[WalkStep], translation: Translation = None,
                  fault: PageFault = None) -> Dict[str, Any]:
    """A PAE walk as JSON-ready data, with the keys of paging.describe_walk."""
    indices = page_indices(va)
    levels = []
    for step in steps:
        fields = paging.entry_fields(step.value, step.level)
        if step.level == "PDPT":
            fields = dict(fields, leaf=False)       # bit 7 is reserved in a PDPTE
        levels.append({"level": step.level, "linux": LINUX_LEVEL_NAMES_PAE[step.level],
                       "index": indices[step.level], "address": step.address, "value": step.value,
                       "flags": paging.entry_flags(step.value, step.level) if fields["present"] else [],
                       "bits": fields,
                       "next_table": (step.value & paging.PHYS_ADDR_MASK)
                       if fields["present"] and not fields["leaf"] else None})
    out: Dict[str, Any] = {"va": va, "la57": False, "paging": "PAE", "levels": levels,
                           "mapped": translation is not None, "phys": None, "page_size": None, "fault": None}
    if translation is not None:
        out.update(phys=translation.phys, page_size=translation.page_size, writable=translation.writable,
                   user=translation.user, executable=translation.executable,
                   global_page=translation.global_page, pkey=0)
    if fault is not None:
        out["fault"] = {"level": fault.level, "linux": LINUX_LEVEL_NAMES_PAE.get(fault.level),
                        "reason": fault.reason, "entry_address": fault.entry_address,
                        "entry_value": fault.entry_value}
    return out
