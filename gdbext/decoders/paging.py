"""A pure x86-64 page-table walk (Intel SDM Vol.3 4.5, 4-level and 5-level).

The caller supplies read_u64(physical_address) -> int; whatever it raises
(e.g. MemoryUnreadable) propagates unchanged.  A non-present entry raises
PageFault (a DecodeError) naming the level; a non-canonical address raises
DecodeError.

Masks: physical addresses are taken as bits 51:12 (MAXPHYADDR <= 52), so
CR3's PCID (11:0), LAM (61, 62) and NOFLUSH (63) bits and an entry's XD (63)
and protection-key (62:59) bits never leak into addresses.  Note 6.1's
CR3_ADDR_MASK is 0x7FFFFFFFFFFFF000 while 6.12 uses PHYSICAL_PAGE_MASK
(arch/x86/include/asm/processor-flags.h), because 6.12 knows CR3 bits 61/62
are LAM controls; masking at 52 bits is right for both.
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import Any, Callable, Dict, List, NamedTuple

from gdbext.errors import DecodeError
from gdbext.decoders.bits import MASK64, Record, to_unsigned

PAGE_SHIFT = 12
PAGE_SIZE_4K = 1 << 12
PAGE_SIZE_2M = 1 << 21
PAGE_SIZE_1G = 1 << 30

PHYS_ADDR_MASK = ((1 << 52) - 1) & ~0xFFF        # bits 51:12
PDPTE_1G_ADDR_MASK = ((1 << 52) - 1) & ~(PAGE_SIZE_1G - 1)  # bits 51:30 (bit 12 is PAT)
PDE_2M_ADDR_MASK = ((1 << 52) - 1) & ~(PAGE_SIZE_2M - 1)    # bits 51:21 (bit 12 is PAT)

_P, _RW, _US, _PWT, _PCD, _A, _D, _PS, _G = 0, 1, 2, 3, 4, 5, 6, 7, 8
_XD = 63

# CR3 (SDM Vol.3 4.5; arch/x86/include/uapi/asm/processor-flags.h)
X86_CR3_PCID_MASK = 0xFFF
X86_CR3_PWT = 1 << 3
X86_CR3_PCD = 1 << 4
X86_CR3_LAM_U57 = 1 << 61
X86_CR3_LAM_U48 = 1 << 62
X86_CR3_PCID_NOFLUSH = 1 << 63
# PTI (arch/x86/entry/calling.h): PGDs are 8 KiB, the user half is the
# second page, so PTI_USER_PGTABLE_BIT = PAGE_SHIFT; the user PCID has
# X86_CR3_PTI_PCID_USER_BIT (11) set (asm/processor-flags.h).
PTI_USER_PGTABLE_BIT = PAGE_SHIFT
PTI_USER_PCID_BIT = 11
PTI_USER_PGTABLE_AND_PCID_MASK = (1 << PTI_USER_PGTABLE_BIT) | (1 << PTI_USER_PCID_BIT)

# Level names (Intel) with the Linux names they correspond to.
LINUX_LEVEL_NAMES_4 = {"PML4": "pgd", "PDPT": "pud", "PD": "pmd", "PT": "pte"}
LINUX_LEVEL_NAMES_5 = {"PML5": "pgd", "PML4": "p4d", "PDPT": "pud", "PD": "pmd", "PT": "pte"}
_LEVELS_4 = (("PML4", 39), ("PDPT", 30), ("PD", 21), ("PT", 12))
_LEVELS_5 = (("PML5", 48),) + _LEVELS_4


class WalkStep(NamedTuple):
    """One paging-structure entry visited: (level name, entry address, entry value)."""
    level: str
    address: int
    value: int

    def to_dict(self) -> Dict[str, Any]:
        return {"level": self.level, "address": self.address, "value": self.value,
                "flags": entry_flags(self.value, self.level)}


class PageFault(DecodeError):
    """The walk hit a non-present entry (or a reserved bit)."""

    def __init__(self, va: int, level: str, entry_address: int, entry_value: int,
                 steps: List[WalkStep], reason: str = "not present"):
        self.va = va
        self.level = level
        self.entry_address = entry_address
        self.entry_value = entry_value
        self.steps = list(steps)
        self.reason = reason
        super().__init__(f"{va:#x} is not mapped: {level} entry at {entry_address:#x} "
                         f"= {entry_value:#x} ({reason})")


@dataclass
class Translation(Record):
    va: int
    phys: int
    page_size: int
    levels: List[WalkStep]
    writable: bool     # RW set at every level
    user: bool         # U/S set at every level
    executable: bool   # XD clear at every level (assuming EFER.NXE)
    global_page: bool  # G on the leaf
    la57: bool = False
    linux_levels: Dict[str, str] = dc_field(default_factory=dict)


def entry_flags(value: int, level: str = "PT") -> List[str]:
    """Names of the architectural flag bits of a paging entry."""
    value &= MASK64
    names = []
    table = [(_P, "P"), (_RW, "RW"), (_US, "US"), (_PWT, "PWT"), (_PCD, "PCD"), (_A, "A")]
    leafish = level in ("PT", "PD", "PDPT")
    if leafish:
        table.append((_D, "D"))
        table.append((_PS, "PAT" if level == "PT" else "PS"))
        table.append((_G, "G"))
    if level in ("PD", "PDPT") and value >> _PS & 1:
        table.append((12, "PAT"))
    table.append((_XD, "XD"))
    for b, n in table:
        if value >> b & 1:
            names.append(n)
    pkey = (value >> 59) & 0xF
    if pkey and (level == "PT" or (level in ("PD", "PDPT") and value >> _PS & 1)):
        names.append(f"PKEY={pkey}")
    return names


def is_canonical(va: int, la57: bool = False) -> bool:
    va = to_unsigned(va, 64, "virtual address")
    top = 56 if la57 else 47
    upper = va >> top
    return upper == 0 or upper == (1 << (64 - top)) - 1


def cr3_pgd_address(cr3: int) -> int:
    """Physical address of the top-level table."""
    return to_unsigned(cr3, 64, "CR3") & PHYS_ADDR_MASK


def decode_cr3(cr3: int, pcide: bool = True) -> Dict[str, Any]:
    cr3 = to_unsigned(cr3, 64, "CR3")
    out: Dict[str, Any] = {
        "pgd": cr3 & PHYS_ADDR_MASK,
        "noflush": bool(cr3 & X86_CR3_PCID_NOFLUSH),
        "lam_u57": bool(cr3 & X86_CR3_LAM_U57),
        "lam_u48": bool(cr3 & X86_CR3_LAM_U48),
        "pti_user_pgd": bool(cr3 >> PTI_USER_PGTABLE_BIT & 1),
    }
    if pcide:
        out["pcid"] = cr3 & X86_CR3_PCID_MASK
        out["pti_user_pcid"] = bool(cr3 >> PTI_USER_PCID_BIT & 1)
    else:
        out["pwt"] = bool(cr3 & X86_CR3_PWT)
        out["pcd"] = bool(cr3 & X86_CR3_PCD)
    return out


def kernel_pgd_from_user_cr3(cr3: int) -> int:
    """The kernel CR3 that SWITCH_TO_KERNEL_CR3 (ADJUST_KERNEL_CR3 in
    arch/x86/entry/calling.h) derives from a PTI user CR3: clear bit 12 (the
    user PGD half) and bit 11 (the user PCID).  Other PCID bits are kept;
    the NOFLUSH bit the entry code may set is not added."""
    return to_unsigned(cr3, 64, "CR3") & ~PTI_USER_PGTABLE_AND_PCID_MASK & MASK64


# The user-space half of a PGD: pgd indices below KERNEL_PGD_BOUNDARY
# (asm/pgtable_64_types.h: PTRS_PER_PGD / 2 on 4- and 5-level paging).
USER_PGD_PTRS = 256
_NX = 1 << _XD


def kernel_cr3(cr3: int, read_u64: Callable[[int], int]) -> int:
    """The kernel's CR3 for a CPU running on `cr3`, which may be a PTI user
    CR3.  Bit 12 alone does not say so: 6.1 and 6.12 allocate every PGD as
    8 KiB (PGD_ALLOCATION_ORDER 1 whenever PTI is built in), but 7.2's
    pgd_allocation_order() is 1 only when PTI is enabled at run time, so
    without PTI a PGD may well sit at an odd 4 KiB page.  A PTI pair is
    recognised by the kernel itself: __pti_set_user_pgtbl() (arch/x86/mm/
    pti.c) writes every user-space entry to both halves, adding NX to the
    kernel copy.  With bit 12 set and the user halves equal but for NX (and
    some entry present), `cr3` is the user half; otherwise it is the
    kernel's own PGD."""
    cr3 = to_unsigned(cr3, 64, "CR3")
    if not cr3 >> PTI_USER_PGTABLE_BIT & 1:
        return cr3
    user = cr3_pgd_address(cr3)
    kernel = user - PAGE_SIZE_4K
    present = False
    for i in range(USER_PGD_PTRS):
        u, k = _read(read_u64, user + 8 * i), _read(read_u64, kernel + 8 * i)
        if (u | _NX) != (k | _NX):
            return cr3
        present |= bool(u & 1)
    return kernel_pgd_from_user_cr3(cr3) if present else cr3


def user_cr3_from_kernel_cr3(cr3: int) -> int:
    """Inverse direction (SWITCH_TO_USER_CR3, PCID case)."""
    return to_unsigned(cr3, 64, "CR3") | PTI_USER_PGTABLE_AND_PCID_MASK


def _read(read_u64: Callable[[int], int], addr: int) -> int:
    v = read_u64(addr)
    if isinstance(v, bool) or not isinstance(v, int):
        raise DecodeError(f"page-table read at {addr:#x} returned {type(v).__name__}, not int")
    return to_unsigned(v, 64, f"page-table entry at {addr:#x}")


def translate(va: int, cr3: int, read_u64: Callable[[int], int], la57: bool = False) -> Translation:
    """Walk the page tables rooted at `cr3` for `va`."""
    va = to_unsigned(va, 64, "virtual address")
    if not is_canonical(va, la57):
        raise DecodeError(f"{va:#x} is not canonical for {'5' if la57 else '4'}-level paging")
    table = cr3_pgd_address(cr3)
    steps: List[WalkStep] = []
    writable = user = executable = True
    for level, shift in (_LEVELS_5 if la57 else _LEVELS_4):
        index = (va >> shift) & 0x1FF
        addr = table + index * 8
        entry = _read(read_u64, addr)
        steps.append(WalkStep(level, addr, entry))
        if not entry & 1:
            raise PageFault(va, level, addr, entry, steps)
        writable &= bool(entry >> _RW & 1)
        user &= bool(entry >> _US & 1)
        executable &= not (entry >> _XD & 1)
        ps = bool(entry >> _PS & 1)
        if ps and level in ("PML5", "PML4"):
            raise PageFault(va, level, addr, entry, steps, reason="reserved bit 7 (PS) set")
        if ps and level == "PDPT":
            phys, size = (entry & PDPTE_1G_ADDR_MASK) | (va & (PAGE_SIZE_1G - 1)), PAGE_SIZE_1G
        elif ps and level == "PD":
            phys, size = (entry & PDE_2M_ADDR_MASK) | (va & (PAGE_SIZE_2M - 1)), PAGE_SIZE_2M
        elif level == "PT":
            phys, size = (entry & PHYS_ADDR_MASK) | (va & (PAGE_SIZE_4K - 1)), PAGE_SIZE_4K
        else:
            table = entry & PHYS_ADDR_MASK
            continue
        return Translation(
            va=va, phys=phys, page_size=size, levels=steps, writable=writable, user=user,
            executable=executable, global_page=bool(entry >> _G & 1), la57=la57,
            linux_levels=dict(LINUX_LEVEL_NAMES_5 if la57 else LINUX_LEVEL_NAMES_4))
    raise AssertionError("unreachable: PT level always returns")  # pragma: no cover


def page_indices(va: int, la57: bool = False) -> Dict[str, int]:
    """Per-level table indices of `va` (for display and for building tables)."""
    va = to_unsigned(va, 64, "virtual address")
    return {level: (va >> shift) & 0x1FF for level, shift in (_LEVELS_5 if la57 else _LEVELS_4)}


def _is_leaf(value: int, level: str) -> bool:
    return level == "PT" or (level in ("PD", "PDPT") and bool(value >> _PS & 1))


def entry_fields(value: int, level: str) -> Dict[str, Any]:
    """One paging entry's bits as booleans (SDM Vol.3A 4.5, Tables 4-15 to
    4-20): P, RW, US, PWT, PCD, A; on a leaf also D, G and the protection
    key (bits 62:59, used with CR4.PKE); XD (NX) at every level; `leaf`
    says whether it maps a page (PS on a PD/PDPT entry, or a PT entry)."""
    value = to_unsigned(value, 64, "paging entry")
    leaf = _is_leaf(value, level)
    out: Dict[str, Any] = {
        "present": bool(value & 1), "writable": bool(value >> _RW & 1), "user": bool(value >> _US & 1),
        "pwt": bool(value >> _PWT & 1), "pcd": bool(value >> _PCD & 1), "accessed": bool(value >> _A & 1),
        "nx": bool(value >> _XD & 1), "leaf": leaf and bool(value & 1),
    }
    if leaf:
        out.update(dirty=bool(value >> _D & 1), global_page=bool(value >> _G & 1), pkey=(value >> 59) & 0xF)
    return out


def describe_walk(va: int, steps: List[WalkStep], la57: bool = False,
                  translation: "Translation" = None, fault: "PageFault" = None) -> Dict[str, Any]:
    """A walk (finished or stopped by `fault`) as JSON-ready data: every
    level visited with its index, entry address and value, flag names and
    bits; then the page (phys, size, effective permissions) or the fault."""
    names = LINUX_LEVEL_NAMES_5 if la57 else LINUX_LEVEL_NAMES_4
    indices = page_indices(va, la57)
    levels = []
    for step in steps:
        fields = entry_fields(step.value, step.level)
        levels.append({"level": step.level, "linux": names.get(step.level), "index": indices.get(step.level),
                       "address": step.address, "value": step.value,
                       "flags": entry_flags(step.value, step.level) if fields["present"] else [],
                       "bits": fields,
                       "next_table": (step.value & PHYS_ADDR_MASK) if fields["present"] and not fields["leaf"]
                       else None})
    out: Dict[str, Any] = {"va": va, "la57": la57, "levels": levels, "mapped": translation is not None,
                           "phys": None, "page_size": None, "fault": None}
    if translation is not None:
        leaf = levels[-1]["bits"]
        out.update(phys=translation.phys, page_size=translation.page_size,
                   writable=translation.writable, user=translation.user,
                   executable=translation.executable, global_page=translation.global_page,
                   pkey=leaf.get("pkey", 0))
    if fault is not None:
        out["fault"] = {"level": fault.level, "linux": names.get(fault.level), "reason": fault.reason,
                        "entry_address": fault.entry_address, "entry_value": fault.entry_value}
    return out
