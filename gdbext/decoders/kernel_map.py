# SPDX-License-Identifier: GPL-2.0-or-later
"""The x86-64 kernel image's mapping, read from its page directory: which
ranges are writable and not executable (.data, .bss: where the kernel keeps
pointers such as vmcoreinfo_data) once boot has set the final permissions
(mark_rodata_ro, free_kernel_image_pages in arch/x86/mm/init_64.c).

Entry bits: SDM Vol.3A 4.5 (Tables 4-17 to 4-19): P bit 0, R/W bit 1, PS
bit 7 (a 2 MiB page in a page-directory entry), XD bit 63."""
import array
from typing import Callable, List, Tuple

PRESENT, WRITABLE, PAGE_SIZE_BIT, NO_EXECUTE = 1, 1 << 1, 1 << 7, 1 << 63
FRAME = 0x000FFFFFFFFFF000
PAGE, LARGE = 1 << 12, 1 << 21


def data_ranges(directory: bytes, base: int, read_table: Callable[[int], bytes]) -> List[Tuple[int, int]]:
    """[(start, end)] of the writable, non-executable pages mapped by one
    page directory (512 entries covering 1 GiB from `base`), merged into
    runs.  `read_table(physical)` returns a 4 KiB page table."""
    runs: List[List[int]] = []

    def add(va: int, size: int) -> None:
        if runs and runs[-1][1] == va:
            runs[-1][1] = va + size
        else:
            runs.append([va, va + size])

    for i, pde in enumerate(array.array("Q", directory)):
        va = base + i * LARGE
        if not pde & PRESENT:
            continue
        if pde & PAGE_SIZE_BIT:
            if pde & WRITABLE and pde & NO_EXECUTE:
                add(va, LARGE)
            continue
        for j, pte in enumerate(array.array("Q", read_table(pde & FRAME))):
            if not pte & PRESENT:
                continue
            writable = pte & WRITABLE and pde & WRITABLE
            if writable and (pte | pde) & NO_EXECUTE:
                add(va + j * PAGE, PAGE)
    return [(a, b) for a, b in runs]


def page_pointers(words: bytes, lowest: int, highest: int) -> List[Tuple[int, int]]:
    """[(offset in `words`, value)] of the 8-byte aligned values that are
    page-aligned addresses in [lowest, highest): candidate pointers to a
    page the kernel allocated (get_zeroed_page)."""
    out = []
    for k, v in enumerate(array.array("Q", words[:len(words) & ~7])):
        if not v & (PAGE - 1) and lowest <= v < highest:
            out.append((8 * k, v))
    return out
