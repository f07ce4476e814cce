"""The kernel's virtual memory areas on x86-32, from the values the macros of
arch/x86/include/asm/pgtable_32_areas.h, fixmap.h and cpu_entry_area.h
(6.1) are built on.  Pure: numbers in, areas out.

From the top of the address space down:
- fixmap: [FIXADDR_TOT_START, FIXADDR_TOP), __end_of_fixed_addresses pages
  under __FIXADDR_TOP;
- cpu_entry_area: CPU_ENTRY_AREA_BASE = (FIXADDR_TOT_START - PAGE_SIZE *
  (CPU_ENTRY_AREA_PAGES + 1)) & PMD_MASK; the read-only IDT page, then
  NR_CPUS areas of sizeof(struct cpu_entry_area);
- the LDT remap: LDT_BASE_ADDR = (CPU_ENTRY_AREA_BASE - PAGE_SIZE) &
  PMD_MASK, one PMD;
- pkmap (CONFIG_HIGHMEM): PKMAP_BASE = (LDT_BASE_ADDR - PAGE_SIZE) &
  PMD_MASK, LAST_PKMAP pages (512 with PAE, 1024 without);
- vmalloc: [high_memory + VMALLOC_OFFSET (8 MiB), PKMAP_BASE - 2 pages)
  (LDT_BASE_ADDR - 2 pages without HIGHMEM); modules live there
  (MODULES_VADDR = VMALLOC_START, MODULES_END = VMALLOC_END);
- lowmem, the direct map: [PAGE_OFFSET, high_memory).
"""
from dataclasses import dataclass
from typing import Dict, Tuple

PAGE_SIZE = 4096
VMALLOC_OFFSET = 8 << 20


@dataclass(frozen=True)
class Inputs32:
    page_offset: int           # PAGE_OFFSET (CONFIG_VMSPLIT_*)
    high_memory: int           # the variable high_memory: the end of lowmem
    fixaddr_top: int           # the variable __FIXADDR_TOP
    fixed_addresses: int       # __end_of_fixed_addresses (enum fixed_addresses)
    nr_cpus: int               # NR_CPUS
    cpu_entry_area_size: int   # sizeof(struct cpu_entry_area)
    pae: bool                  # CONFIG_X86_PAE: 2 MiB PMDs, LAST_PKMAP 512
    highmem: bool              # CONFIG_HIGHMEM: a pkmap area below the LDT remap


def areas(i: Inputs32) -> Dict[str, Tuple[int, int]]:
    """{area: (start, end)}, end exclusive, for lowmem, vmalloc, modules,
    pkmap (with HIGHMEM), ldt_remap, cpu_entry_area and fixmap."""
    pmd_mask = ~((2 << 20 if i.pae else 4 << 20) - 1) & 0xFFFFFFFF
    pmd_size = (~pmd_mask + 1) & 0xFFFFFFFF
    fix_start = i.fixaddr_top - i.fixed_addresses * PAGE_SIZE
    cea_pages = i.nr_cpus * -(-i.cpu_entry_area_size // PAGE_SIZE)
    cea_base = (fix_start - PAGE_SIZE * (cea_pages + 1)) & pmd_mask
    ldt_base = (cea_base - PAGE_SIZE) & pmd_mask
    out = {"lowmem": (i.page_offset, i.high_memory)}
    if i.highmem:
        pkmap = (ldt_base - PAGE_SIZE) & pmd_mask
        out["pkmap"] = (pkmap, pkmap + (512 if i.pae else 1024) * PAGE_SIZE)
        vmalloc_end = pkmap - 2 * PAGE_SIZE
    else:
        vmalloc_end = ldt_base - 2 * PAGE_SIZE
    out["vmalloc"] = (i.high_memory + VMALLOC_OFFSET, vmalloc_end)
    out["modules"] = out["vmalloc"]
    out["ldt_remap"] = (ldt_base, ldt_base + pmd_size)
    out["cpu_entry_area"] = (cea_base, cea_base + PAGE_SIZE + i.nr_cpus * i.cpu_entry_area_size)
    out["fixmap"] = (fix_start, i.fixaddr_top)
    return out
